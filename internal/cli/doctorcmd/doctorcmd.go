// Package doctorcmd implements `schnitzel doctor`: deployment health checks
// with a fix for each failure.
package doctorcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/ops/doctor"
	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
	"github.com/schnitzel-stream/schnitzel/internal/ops/service"
)

// Options are the command's dependencies; zero values use the real system.
type Options struct {
	// Load loads and validates a graph as a run does (doctor.Options.Load).
	Load   func(graphPath string) (*graph.Plan, error)
	Getenv func(string) string
	// GOOS of the host (default runtime.GOOS).
	GOOS string
	// Installer answers the service check (default: the local host).
	Installer *service.Installer
	// DiskFree overrides the free-space probe (tests).
	DiskFree func(string) (uint64, uint64, error)
}

// Command returns the doctor command; load is the run's graph loader.
func Command(load func(graphPath string) (*graph.Plan, error)) *cobra.Command {
	return NewCommand(Options{Load: load})
}

// NewCommand returns the doctor command with explicit dependencies.
func NewCommand(o Options) *cobra.Command {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.GOOS == "" {
		o.GOOS = runtime.GOOS
	}
	var (
		graph, workDir, metricsAddr, manager, name string
		queueCheck                                 string
		asJSON, user, checkService                 bool
	)
	cmd := &cobra.Command{
		Use:   "doctor [--graph G] [--json]",
		Short: "Check that this machine can run a graph",
		Long: `Check a deployment: the graph is valid and its plugins allowed, the config,
state and logs directories exist (state and logs writable), there is free
disk, ffmpeg is installed when the graph reads video, durable SQLite queue
files pass PRAGMA integrity_check, the metrics port is free and the service
is installed and running. Each problem comes with a fix.

Relative paths in the graph (queue files) resolve against --workdir, which
defaults to the current directory; a service runs in the state directory,
so check a service deployment with --workdir set to it (see "schnitzel paths").

Exit status: 0 when no required check failed (warnings allowed), 2 when the
graph is missing or invalid, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch queueCheck {
			case "full", "quick", "off":
			default:
				return exitcode.Errorf(exitcode.Usage, "--queue-check %q: want full, quick or off", queueCheck)
			}
			m, err := service.ParseManager(manager)
			if err != nil {
				return exitcode.New(exitcode.Usage, err)
			}
			p, err := paths.For(o.GOOS, user, o.Getenv)
			if err != nil {
				return exitcode.New(exitcode.Usage, err)
			}
			if graph != "" {
				if graph, err = filepath.Abs(graph); err != nil {
					return exitcode.New(exitcode.Usage, err)
				}
			}
			// Validate and interpolate the graph as the service sees it:
			// with its env file loaded. A broken file is reported by the
			// env_file check, so its error is not fatal here.
			_ = service.LoadEnvFile(p.EnvFile)
			opts := doctor.Options{Graph: graph, Load: o.Load, Paths: p,
				WorkDir: workDir, MetricsAddr: metricsAddr, Getenv: o.Getenv, DiskFree: o.DiskFree, QueueCheck: queueCheck}
			if checkService && m.GOOS() == o.GOOS {
				in := o.Installer
				if in == nil {
					in = &service.Installer{Host: service.LocalHost{}, GOOS: o.GOOS}
				}
				home := o.Getenv("HOME")
				if home == "" {
					home, _ = os.UserHomeDir()
				}
				cfg := service.Config{Manager: m, Name: name, User: user, Paths: p, Home: home}
				opts.Service = func(ctx context.Context) (service.State, error) { return in.Status(ctx, cfg) }
			}
			r := doctor.Run(cmd.Context(), opts)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printText(cmd, r)
			}
			if r.Failed() {
				// The report already says what failed; exit without repeating
				// it: 2 for a missing or invalid graph (as every command that
				// loads one), 1 for any other failed check.
				for _, c := range r.Checks {
					if c.Name == "graph" && c.Status == doctor.Fail {
						return exitcode.New(exitcode.Usage, nil)
					}
				}
				return exitcode.New(exitcode.Runtime, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&graph, "graph", "", "graph to check (validity, ffmpeg, queue files)")
	f.BoolVar(&asJSON, "json", false, "print {status, checks: [{name, status, message, fix}]}")
	f.BoolVar(&user, "user", false, "check the per-user deployment instead of the system-wide one")
	f.StringVar(&workDir, "workdir", "", "directory relative graph paths resolve against (default: current directory)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "check that this address (host:port) is free to listen on")
	f.BoolVar(&checkService, "service", true, "check that the service is installed and running")
	f.StringVar(&queueCheck, "queue-check", "full", "SQLite queue check: full (integrity_check), quick (quick_check) or off")
	f.StringVar(&manager, "manager", string(service.DefaultManager(o.GOOS)), "service manager for the service check")
	f.StringVar(&name, "name", service.DefaultName, "service name for the service check")
	return cmd
}

func printText(cmd *cobra.Command, r doctor.Report) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fails, warns := 0, 0
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Status, c.Name, c.Message)
		if c.Fix != "" && c.Status != doctor.OK {
			fmt.Fprintf(w, "\t\tfix: %s\n", c.Fix)
		}
		switch c.Status {
		case doctor.Fail:
			fails++
		case doctor.Warn:
			warns++
		}
	}
	w.Flush()
	fmt.Fprintf(cmd.OutOrStdout(), "doctor: %s (%d checks, %d failed, %d warnings)\n", r.Status, len(r.Checks), fails, warns)
}
