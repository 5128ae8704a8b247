package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/doctorcmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/pathscmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/queuecmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/servicecmd"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
)

func init() {
	extraCommands = append(extraCommands,
		func(*App) *cobra.Command { return pathscmd.Command() },
		func(*App) *cobra.Command { return queuecmd.Command() },
		func(a *App) *cobra.Command { return servicecmd.Command(a.validatePath) },
		func(a *App) *cobra.Command { return oneShotGC(a, doctorcmd.Command(a.loadPlan)) },
	)
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
