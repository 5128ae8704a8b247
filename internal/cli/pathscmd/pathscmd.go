// Package pathscmd implements `schnitzel paths`: the config, state and logs
// directories of a deployment on this (or another) OS.
package pathscmd

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
)

// Command returns the paths command; it reads the process environment.
func Command() *cobra.Command { return NewCommand(os.Getenv) }

// NewCommand returns the paths command reading the environment through getenv.
func NewCommand(getenv func(string) string) *cobra.Command {
	var asJSON, user bool
	var goos string
	cmd := &cobra.Command{
		Use:   "paths [--json] [--user]",
		Short: "Print the config, state and logs directories",
		Long: `Print the directories a deployment uses: config (graphs, env file), state (the
service's working directory: queues and outputs named by relative paths in a
graph land here) and logs. System-wide by default; --user for a per-user
deployment (XDG on Linux, ~/Library on macOS, %LOCALAPPDATA% on Windows).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			target, err := normOS(goos)
			if err != nil {
				return exitcode.New(exitcode.Usage, err)
			}
			env := getenv
			if target != runtime.GOOS && user {
				// Another OS's layout: its variables are not set here, so
				// show them as that OS writes them (%LOCALAPPDATA%, $HOME).
				env = func(k string) string {
					switch {
					case target == "windows" && k == "LOCALAPPDATA":
						return "%LOCALAPPDATA%"
					case target != "windows" && k == "HOME":
						return "$HOME"
					}
					return ""
				}
			}
			p, err := paths.For(target, user, env)
			if err != nil {
				return exitcode.New(exitcode.Usage, err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "os\t%s (%s)\n", p.OS, p.Scope)
			for _, d := range p.Dirs() {
				fmt.Fprintf(w, "%s\t%s\n", d.Class, d.Path)
			}
			fmt.Fprintf(w, "env_file\t%s\n", p.EnvFile)
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&user, "user", false, "per-user paths instead of system-wide")
	cmd.Flags().StringVar(&goos, "os", runtime.GOOS, "show the layout of another OS: linux, darwin (or macos), windows")
	_ = cmd.RegisterFlagCompletionFunc("os", cobra.FixedCompletions([]string{"linux", "darwin", "macos", "windows"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// normOS accepts the systems schnitzel has a layout for.
func normOS(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "linux":
		return "linux", nil
	case "darwin", "macos", "osx":
		return "darwin", nil
	case "windows", "win":
		return "windows", nil
	}
	return "", fmt.Errorf("--os %q: unknown system (known: linux, darwin or macos, windows)", s)
}
