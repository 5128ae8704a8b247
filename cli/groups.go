package cli

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/schnitzel-stream/schnitzel/configs"
	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/cli/clientcmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/doctorcmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/pathscmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/queuecmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/servecmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/servicecmd"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
)

func init() {
	extraCommands = append(extraCommands,
		func(*App) *cobra.Command { return pathscmd.Command() },
		func(*App) *cobra.Command { return queuecmd.Command() },
		func(a *App) *cobra.Command { return servicecmd.Command(a.validatePath) },
		func(a *App) *cobra.Command { return oneShotGC(a, doctorcmd.Command(a.loadPlan)) },
		func(a *App) *cobra.Command { return a.serveCommand() },
	)
	for _, c := range []func(clientcmd.Options) *cobra.Command{clientcmd.Graphs, clientcmd.Tap, clientcmd.Top, clientcmd.Fleet} {
		extraCommands = append(extraCommands, func(a *App) *cobra.Command { return c(a.clientOptions()) })
	}
}

func (a *App) serveCommand() *cobra.Command {
	return servecmd.Command(servecmd.Options{
		Registry: a.Registry, Prefixes: a.Prefixes,
		Getenv: a.Getenv, LookupEnv: a.LookupEnv,
		Stderr: a.Stderr, Signals: a.Signals, HardExit: a.HardExit,
		Limits:  func() (engine.Limits, error) { return a.graphLimits() },
		Logger:  a.flagLogger,
		Presets: presetGraphs(),
	})
}

// presetGraphs are the embedded example graphs by file name: upstream's
// preset table names them.
func presetGraphs() fs.FS {
	sub, err := fs.Sub(configs.Graphs, "graphs")
	if err != nil {
		panic(err) // a fixed path of an embedded FS
	}
	return sub
}

func (a *App) clientOptions() clientcmd.Options {
	return clientcmd.Options{
		Getenv: a.Getenv, Stdin: a.Stdin, Signals: a.Signals,
		IsTerminal: func(w io.Writer) bool {
			f, ok := w.(*os.File)
			return ok && term.IsTerminal(int(f.Fd()))
		},
	}
}

// flagLogger builds the logger of a command that inherits the root's
// --log-* flags (serve), from their values.
func (a *App) flagLogger(cmd *cobra.Command) (*slog.Logger, func(), error) {
	get := func(name string) string {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	o := logOptions{format: get("log-format"), level: get("log-level"), file: get("log-file")}
	o.maxSizeMB, _ = strconv.Atoi(get("log-max-size-mb"))
	o.maxBackups, _ = strconv.Atoi(get("log-max-backups"))
	return o.logger(a.Stderr)
}

// oneShotGC runs c at GOGC=100 instead of the run's 400: doctor loads the
// graph twice and scans its YAML once more, and at 400 the garbage of a
// large file under the limits took it past 128 MiB (64 MiB at 100).
func oneShotGC(a *App, c *cobra.Command) *cobra.Command {
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if a.SetGCPercent != nil {
			a.SetGCPercent(100)
		}
		return run(cmd, args)
	}
	return c
}

// validatePath validates a graph file for service install: nil when it
// would run, else every error with file:line.
func (a *App) validatePath(path string) error {
	_, err := a.loadPlan(path)
	return err
}

// loadPlan loads and validates a graph file as a run does (doctor reads
// its queue paths and plugins from the plan): every error with file:line.
func (a *App) loadPlan(path string) (*graph.Plan, error) {
	plan, diags, err := a.load(path, false)
	if err == nil {
		return plan, nil
	}
	var msgs []string
	for _, d := range diags.Errors() {
		msgs = append(msgs, d.String())
	}
	if len(msgs) == 0 {
		return nil, err
	}
	return nil, errors.New(strings.Join(msgs, "; "))
}
