package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/doctorcmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/pathscmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/queuecmd"
	"github.com/schnitzel-stream/schnitzel/internal/cli/servicecmd"
)

func init() {
	extraCommands = append(extraCommands,
		func(*App) *cobra.Command { return pathscmd.Command() },
		func(*App) *cobra.Command { return queuecmd.Command() },
		func(a *App) *cobra.Command { return servicecmd.Command(a.validatePath) },
		func(a *App) *cobra.Command { return oneShotGC(a, doctorcmd.Command(a.validatePath, a.graphPlugins)) },
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

// validatePath validates a graph file for the ops commands (service,
// doctor): nil when it would run, else every error with file:line.
func (a *App) validatePath(path string) error {
	_, diags, err := a.load(path, false)
	if err == nil {
		return nil
	}
	var msgs []string
	for _, d := range diags.Errors() {
		msgs = append(msgs, d.String())
	}
	if len(msgs) == 0 {
		return err
	}
	return errors.New(strings.Join(msgs, "; "))
}

// graphPlugins lists the plugin strings a graph uses (its job for v1).
func (a *App) graphPlugins(path string) ([]string, error) {
	g, diags, err := a.loadFile(path)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, diags
	}
	if g.Version == 1 {
		return []string{g.Job}, nil
	}
	var out []string
	for _, n := range g.Nodes {
		out = append(out, n.Plugin)
	}
	return out, nil
}
