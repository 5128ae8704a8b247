// Package cli is the schnitzel command line as a library: the door for
// custom binaries. A main package builds a registry (nodes/all plus its own
// nodes) and calls Main:
//
//	func main() { os.Exit(cli.Main(os.Args[1:], reg)) }
//
// Only Main touches the process (exit code, signals, GC tuning); commands
// get their streams and environment injected through App, which tests use
// to run a command line in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/ops/logfile"
	"github.com/schnitzel-stream/schnitzel/internal/ops/service"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// App carries what commands share: streams, environment, registry.
type App struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader // read by --graph - (nil: no stdin)
	Getenv         func(string) string
	LookupEnv      func(string) (string, bool)
	Registry       *plugin.Registry
	// Signals delivers stop requests (SIGINT/SIGTERM); nil: none.
	Signals <-chan os.Signal
	// HardExit is called on a second signal; default os.Exit.
	HardExit func(code int)
	// SetGCPercent retunes the collector for the graph about to run; nil:
	// leave it (tests run many graphs in one process).
	SetGCPercent func(percent int)

	// Commands are extra top-level commands (WithCommand).
	Commands []*cobra.Command
	// Prefixes are plugin module prefixes allowed beside the defaults
	// (WithAllowedPrefixes).
	Prefixes []string

	limits limitOptions // graph loader limits (flags)
}

// Option changes how Main builds the command line.
type Option func(*App)

// WithCommand adds a top-level command beside run, validate, plugins, ...
// The command is a github.com/spf13/cobra command, the one third-party type
// in this package's API: a command needs flags, help and completion like
// the built-in ones. An error its RunE returns prints as "error: ..." and
// exits 1 (a runtime error).
func WithCommand(c *cobra.Command) Option {
	return func(a *App) { a.Commands = append(a.Commands, c) }
}

// WithAllowedPrefixes allows plugin strings under these module prefixes
// (e.g. "acme." for "acme.nodes:Uppercase") beside the defaults
// (schnitzel_stream., ai.), so that a custom binary's graphs can name its
// own nodes without setting ALLOWED_PLUGIN_PREFIXES. When that variable
// is set it replaces the whole list, these prefixes included, as upstream.
func WithAllowedPrefixes(prefixes ...string) Option {
	return func(a *App) { a.Prefixes = append(a.Prefixes, prefixes...) }
}

// Main runs the command line with the nodes and jobs in reg and returns
// the process exit code (0 ok or degraded, 1 runtime error, 2 usage error
// or invalid graph, 3 degraded under --fail-on-degraded).
func Main(args []string, reg *plugin.Registry, opts ...Option) int {
	tuneGC()
	growStdoutPipe()
	app := &App{
		Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin,
		Getenv: os.Getenv, LookupEnv: os.LookupEnv,
		Registry: reg,
		Signals:  notifySignals(),
		HardExit: os.Exit,
		SetGCPercent: func(p int) {
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(p)
			}
		},
	}
	for _, o := range opts {
		o(app)
	}
	return app.Run(args)
}

// tuneGC trades a little memory for throughput: packets are short-lived
// and the live heap is small and bounded (bounded inboxes), so collecting
// at 400% growth instead of 100% cuts GC work to about a quarter for ~20
// MiB more peak RSS (docs/benchmarks.md). Graphs that carry video frames
// use 200% (runV2): there the live heap is tens of MiB of pixels and 400%
// would hold five times that. GOGC in the environment wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// Run executes args and returns the exit code.
func (a *App) Run(args []string) int {
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	err := root.Execute()
	if err == nil {
		return exitcode.OK
	}
	var ee *exitcode.Error
	if errors.As(err, &ee) {
		if ee.Err != nil {
			a.printError(ee.Err.Error())
		}
		return ee.Code
	}
	// cobra's own errors: unknown command or flag, bad argument.
	a.printError(err.Error() + "\nrun 'schnitzel --help' for usage")
	return exitcode.Usage
}

// printError writes the final error line: text, or a JSON log record under
// --log-format json.
func (a *App) printError(msg string) {
	msg = redact.Text(msg)
	if dw, ok := a.Stderr.(*diagWriter); ok {
		slog.New(slog.NewJSONHandler(dw.Writer, nil)).Error(msg)
		return
	}
	fmt.Fprintln(a.Stderr, "error:", msg)
}

// useJSONStderr switches stderr to JSON records when the command being run
// has --log-format json, so that graph diagnostics and the final error
// follow the log format too.
func (a *App) useJSONStderr(cmd *cobra.Command) {
	f := cmd.Flags().Lookup("log-format")
	if f == nil || !strings.EqualFold(f.Value.String(), "json") {
		return
	}
	if _, done := a.Stderr.(*diagWriter); !done {
		a.Stderr = &diagWriter{Writer: a.Stderr}
		cmd.Root().SetErr(a.Stderr)
	}
}

// logOptions are the logging flags shared by commands that run graphs.
type logOptions struct {
	format     string
	level      string
	file       string
	maxSizeMB  int
	maxBackups int
}

func (o *logOptions) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.format, "log-format", "text", "log format on stderr: text or json")
	cmd.PersistentFlags().StringVar(&o.level, "log-level", "info", "log level: debug, info, warn, error")
	cmd.PersistentFlags().StringVar(&o.file, "log-file", "", "write logs to this file (rotated by size) instead of stderr")
	cmd.PersistentFlags().IntVar(&o.maxSizeMB, "log-max-size-mb", logfile.DefaultMaxSizeMB, "with --log-file: rotate when the file reaches this size")
	cmd.PersistentFlags().IntVar(&o.maxBackups, "log-max-backups", logfile.DefaultMaxBackups, "with --log-file: rotated files to keep")
}

// logger builds the logger: stderr, or a rotating --log-file; secrets in
// URLs (user:password@, token=...) are masked either way. The returned
// closer flushes and closes the log file.
func (o *logOptions) logger(stderr io.Writer) (*slog.Logger, func(), error) {
	w, closer := stderr, func() {}
	if o.file != "" {
		f, err := logfile.Open(logfile.Options{Path: o.file, MaxSizeMB: o.maxSizeMB, MaxBackups: o.maxBackups})
		if err != nil {
			return nil, nil, exitcode.Errorf(exitcode.Usage, "--log-file: %v", err)
		}
		w, closer = f, func() { _ = f.Close() }
	}
	h, err := o.handler(w)
	if err != nil {
		closer()
		return nil, nil, err
	}
	return slog.New(logfile.NewMaskingHandler(h)), closer, nil
}

func (o *logOptions) handler(w io.Writer) (slog.Handler, error) {
	var lvl slog.Level
	switch strings.ToLower(o.level) {
	case "debug":
		lvl = slog.LevelDebug
	case "info", "":
		lvl = slog.LevelInfo
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, exitcode.Errorf(exitcode.Usage, "--log-level must be debug, info, warn or error, got %q", o.level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(o.format) {
	case "text", "":
		return slog.NewTextHandler(w, hopts), nil
	case "json":
		return slog.NewJSONHandler(w, hopts), nil
	}
	return nil, exitcode.Errorf(exitcode.Usage, "--log-format must be text or json, got %q", o.format)
}

func (a *App) rootCommand() *cobra.Command {
	ro := &runOptions{}
	root := &cobra.Command{
		Use:   "schnitzel",
		Short: "Run and validate stream-processing node graphs",
		Long: `schnitzel runs YAML node graphs (v2) and legacy job graphs (v1) written for
schnitzel-stream-platform: sources, nodes and sinks connected by edges, every
node in its own goroutine with bounded inboxes between them.

With no --graph it runs the built-in default graph (the mock CCTV pipeline).

The graph file format: docs/graph-format.md. The nodes: schnitzel plugins.
Shell completion: schnitzel completion bash|zsh|fish|powershell.

Exit codes: 0 ok or degraded, 1 runtime error, 2 usage error or invalid graph.`,
		Args:             noArgsOrSuggest,
		SilenceUsage:     true,
		SilenceErrors:    true,
		Version:          Version,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) { a.useJSONStderr(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Under launchd or the Windows SCM, RunAsService applies the
			// service's environment and turns an SCM stop into ctx
			// cancellation; elsewhere it just calls the run.
			return service.RunAsService(context.Background(), func(ctx context.Context) error {
				return a.runGraph(ctx, cmd, ro)
			})
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitcode.New(exitcode.Usage, fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	ro.register(root)
	a.limits.register(root)
	root.AddCommand(a.validateCommand(), a.pluginsCommand(), a.graphCommand(), a.versionCommand())
	for _, c := range extraCommands {
		root.AddCommand(c(a))
	}
	for _, c := range a.Commands {
		root.AddCommand(runtimeErrors(c))
	}
	root.SuggestionsMinimumDistance = 2
	strictGroups(root)
	a.registerCompletions(root)
	return root
}

// runtimeErrors makes an error from c's RunE exit 1, as the built-in
// commands' runtime errors do, instead of 2 (cobra's usage errors).
func runtimeErrors(c *cobra.Command) *cobra.Command {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			var ee *exitcode.Error
			if err != nil && !errors.As(err, &ee) {
				return exitcode.New(exitcode.Runtime, err)
			}
			return err
		}
	}
	return c
}

// noArgsOrSuggest rejects arguments of a command that takes none; the first
// one is most likely a mistyped subcommand, so it gets cobra's suggestions
// (`valdate` -> validate).
func noArgsOrSuggest(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return exitcode.New(exitcode.Usage, errors.New(msg))
}

// strictGroups makes every command that only groups subcommands (graph,
// queue, service) fail on an unknown subcommand with a suggestion and exit
// 2, instead of printing its help and exiting 0. Unknown flags are let
// through to that check: `queue stat --path q` must say "unknown command
// stat, did you mean stats", not "unknown flag --path".
func strictGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
	if c.HasParent() && c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = noArgsOrSuggest
		c.FParseErrWhitelist.UnknownFlags = true
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		}
	}
}

// extraCommands are command groups added by other files (queue, service,
// doctor, paths, bench), kept in a list so that this file does not import
// every group.
var extraCommands []func(*App) *cobra.Command

func (a *App) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "schnitzel", Version)
			return nil
		},
	}
}
