package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// registerCompletions teaches `schnitzel completion bash|zsh|fish|powershell`
// (cobra's generator) our values: graph files for --graph and graph
// arguments, queue files for `queue ... --path`, plugin names for
// `plugins`, and the fixed values of the format, level, manager and os
// flags.
func (a *App) registerCompletions(root *cobra.Command) {
	fixed := map[string][]string{
		"log-format":  {"text", "json"},
		"log-level":   {"debug", "info", "warn", "error"},
		"format":      {"text", "json", "markdown"},
		"manager":     {"systemd", "launchd", "windows", "taskscheduler"},
		"queue-check": {"full", "quick", "off"},
		"os":          {"linux", "darwin", "macos", "windows"},
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for name, values := range fixed {
			if c.Flags().Lookup(name) != nil || c.PersistentFlags().Lookup(name) != nil {
				// An inherited flag is registered once; later calls fail
				// harmlessly.
				_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		if c.Flags().Lookup("graph") != nil || c.PersistentFlags().Lookup("graph") != nil {
			_ = c.RegisterFlagCompletionFunc("graph", completeGraphFiles)
		}
		if c.Parent() != nil && c.Parent().Name() == "queue" && c.Flags().Lookup("path") != nil {
			_ = c.RegisterFlagCompletionFunc("path", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
				return []string{"sqlite3", "sqlite", "db"}, cobra.ShellCompDirectiveFilterFileExt
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func completeGraphFiles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completePlugins offers full plugin names and their class names.
func (a *App) completePlugins(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range a.Registry.Entries() {
		for _, n := range append([]string{e.Name, shortPlugin(e.Name)}, e.Aliases...) {
			if strings.HasPrefix(strings.ToLower(n), strings.ToLower(prefix)) {
				out = append(out, n+"\t"+e.Summary)
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
