package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/procgraph"
)

func init() {
	extraCommands = append(extraCommands, func(a *App) *cobra.Command { return a.procgraphCommand() })
}

const procgraphEngine = "procgraph.foundation" // upstream's engine name in the JSON report

func (a *App) procgraphCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "procgraph",
		Short: "Validate or run a process graph: several graphs linked by queue files or NATS streams",
		Long: `A process graph (upstream's version: 1 procgraph file) lists processes (each a
v2 graph), channels (SQLite queue files, or NATS JetStream subjects with
transport: nats) and links (producer -> consumer over a
channel). validate checks it with upstream's rules plus cycle detection, every
path relative to the working directory; run starts every process's graph in
this process and ends when all have ended (or at SIGINT/SIGTERM).`,
	}
	var spec string
	var asJSON bool
	validate := &cobra.Command{
		Use:   "validate --spec F",
		Short: "Check a process graph and every graph it names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, rep, err := a.loadProcgraph(cmd, spec, asJSON)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeProcgraphJSON(out, map[string]any{"status": "ok", "spec": rep.SpecPath,
					"process_count": rep.ProcessCount, "channel_count": rep.ChannelCount, "link_count": rep.LinkCount,
					"resolved_process_graphs": rep.ProcessGraphs, "resolved_channel_paths": rep.ChannelPaths})
			}
			fmt.Fprintf(out, "process graph validation ok\nspec=%s\nprocesses=%d channels=%d links=%d\n", rep.SpecPath, rep.ProcessCount, rep.ChannelCount, rep.LinkCount)
			for _, id := range sortedKeys(rep.ProcessGraphs) {
				fmt.Fprintf(out, "process[%s]=%s\n", id, rep.ProcessGraphs[id])
			}
			for _, id := range sortedKeys(rep.ChannelPaths) {
				fmt.Fprintf(out, "channel[%s]=%s\n", id, rep.ChannelPaths[id])
			}
			return nil
		},
	}
	var rerun time.Duration
	run := &cobra.Command{
		Use:   "run --spec F",
		Short: "Run every process of a process graph in this process",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, rep, err := a.loadProcgraph(cmd, spec, asJSON)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go a.watchSignals(ctx, cancel, logger)
			exec := func(ctx context.Context, id string, plan *graph.Plan) (string, error) {
				lg := logger.With("process", id)
				lg.Info("process starting", "graph", plan.Graph.File)
				r, err := engine.Execute(ctx, plan, plan.Graph.File, engine.Options{Logger: lg, Stdout: a.Stdout})
				if err != nil {
					lg.Error("process failed to start", "err", err)
					return "error", err
				}
				if r.Error != nil {
					lg.Error("process failed", "node", r.Error.Node, "err", r.Error.Message)
					return string(r.Status), fmt.Errorf("node %q failed (%s): %s", r.Error.Node, r.Error.Phase, r.Error.Message)
				}
				lg.Info("process ended", "status", r.Status)
				return string(r.Status), nil
			}
			if err := ensureNATSStreams(ctx, s, rep, logger); err != nil {
				return exitcode.Errorf(exitcode.Runtime, "%v", err)
			}
			results := procgraph.Run(ctx, s, rep, exec, rerun)
			failed := 0
			for _, r := range results {
				if r.Status == "error" {
					failed++
				}
			}
			if asJSON {
				status := "ok"
				if failed > 0 {
					status = "error"
				}
				if err := writeProcgraphJSON(cmd.OutOrStdout(), map[string]any{"status": status, "spec": rep.SpecPath, "processes": results}); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					line := fmt.Sprintf("process[%s] status=%s runs=%d", r.ID, r.Status, r.Runs)
					if r.Error != "" {
						line += " error=" + r.Error
					}
					fmt.Fprintln(cmd.OutOrStdout(), line)
				}
			}
			if failed > 0 {
				return exitcode.Errorf(exitcode.Runtime, "%d of %d processes failed", failed, len(results))
			}
			return nil
		},
	}
	run.Flags().DurationVar(&rerun, "rerun-delay", 500*time.Millisecond, "how soon a consumer that ended is started again while its producers still run")
	for _, c := range []*cobra.Command{validate, run} {
		c.Flags().StringVar(&spec, "spec", "", "process graph file (version: 1, processes/channels/links)")
		c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
		cmd.AddCommand(c)
	}
	return cmd
}

// loadProcgraph loads and validates; on failure it prints the diagnostics
// (or upstream's JSON error) and returns an exit code error.
func (a *App) loadProcgraph(cmd *cobra.Command, spec string, asJSON bool) (*procgraph.Spec, *procgraph.Report, error) {
	if spec == "" {
		return nil, nil, exitcode.Errorf(exitcode.Usage, "no process graph given: use --spec FILE")
	}
	fail := func(diags graph.Diags) error {
		if asJSON {
			msg := "invalid process graph"
			if errs := diags.Errors(); len(errs) > 0 {
				msg = errs[0].String()
			}
			_ = writeProcgraphJSON(cmd.OutOrStdout(), map[string]any{"status": "error", "error_kind": "validation", "spec": spec,
				"message": msg, "errors": diags.Errors(), "warnings": diags.Warnings()})
		} else {
			printDiags(cmd.ErrOrStderr(), diags)
		}
		return exitcode.Errorf(exitcode.Usage, "%s: invalid process graph", spec)
	}
	s, diags := procgraph.LoadFile(spec, a.LookupEnv)
	if s == nil || diags.HasErrors() {
		return nil, nil, fail(diags)
	}
	rep, vdiags := procgraph.Validate(s, func(path string) (*graph.Plan, graph.Diags, error) {
		plan, d, err := a.load(path, false)
		var ee *exitcode.Error
		if errors.As(err, &ee) && ee.Err == nil {
			err = errors.New("invalid graph")
		}
		return plan, d, err
	})
	diags = append(diags, vdiags...)
	if diags.HasErrors() {
		return nil, nil, fail(diags)
	}
	if !asJSON {
		printDiags(cmd.ErrOrStderr(), diags) // warnings
	}
	return s, rep, nil
}

func writeProcgraphJSON(w io.Writer, v map[string]any) error {
	v["ts"] = time.Now().UTC().Format(time.RFC3339)
	v["engine"] = procgraphEngine
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
