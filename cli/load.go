package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schnitzel-stream/schnitzel/configs"
	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/redact"
)

const embeddedPrefix = "embedded:configs/"

// defaultGraph returns the embedded graph that runs when --graph is not
// given: the seed's default (mock CCTV) when this build has the vision
// pack, else the in-proc demo.
func (a *App) defaultGraph() (string, []byte, error) {
	name := configs.DefaultGraph
	if _, ok := a.Registry.Lookup("schnitzel_stream.nodes.event_builder:ProtocolV02EventBuilderNode"); !ok {
		name = configs.FallbackGraph
	}
	data, err := fs.ReadFile(configs.Graphs, name)
	return embeddedPrefix + name, data, err
}

// load reads, loads and validates a graph. It returns the plan and every
// diagnostic; err is an exitcode error when the graph cannot run.
func (a *App) load(path string, strict bool) (*graph.Plan, graph.Diags, error) {
	return a.loadPart(path, strict, "")
}

// loadPart is load of the connected part holding node part (all of the
// graph when part is ""): one process's share of a graph cut by nats edges.
func (a *App) loadPart(path string, strict bool, part string) (*graph.Plan, graph.Diags, error) {
	var (
		g     *graph.Graph
		diags graph.Diags
	)
	if path == "" {
		name, data, err := a.defaultGraph()
		if err != nil {
			return nil, nil, exitcode.New(exitcode.Runtime, fmt.Errorf("embedded default graph: %w", err))
		}
		g, diags = graph.Load(name, data, a.LookupEnv)
	} else {
		var err error
		if g, diags, err = a.loadFile(path); err != nil {
			return nil, nil, err
		}
	}
	if part != "" && g != nil && !diags.HasErrors() {
		if g.Version != 2 {
			return nil, diags, exitcode.Errorf(exitcode.Usage, "--part: %s is a v1 job graph, which has no parts", g.File)
		}
		sub, err := g.Part(part)
		if err != nil {
			return nil, diags, exitcode.Errorf(exitcode.Usage, "--part: %v", err)
		}
		g = sub
	}
	plan, diags, err := engine.Validate(g, diags, engine.Options{Registry: a.Registry, Getenv: a.Getenv, Prefixes: a.Prefixes, Strict: strict})
	if err != nil {
		var ie *engine.InvalidError
		if errors.As(err, &ie) {
			return nil, diags, exitcode.New(exitcode.Usage, nil)
		}
		return nil, diags, exitcode.New(exitcode.Usage, err)
	}
	return plan, diags, nil
}

func printDiags(w io.Writer, diags graph.Diags) {
	if dw, ok := w.(*diagWriter); ok {
		lg := slog.New(slog.NewJSONHandler(dw.Writer, nil))
		for _, d := range diags {
			lvl := slog.LevelError
			if d.Severity == graph.SevWarning {
				lvl = slog.LevelWarn
			}
			lg.Log(context.Background(), lvl, "graph diagnostic", "file", d.File, "line", d.Line, "column", d.Col,
				"severity", string(d.Severity), "subject", d.Subject, "message", redact.Text(d.Msg))
		}
		return
	}
	for _, d := range diags {
		fmt.Fprintln(w, redact.Text(d.String())) // a config error may quote a URL
	}
}

// stdinName is how a graph read from standard input (--graph -) is named
// in diagnostics and the report.
const stdinName = "<stdin>"

// loadStdin loads the graph on standard input (--graph -) within lim:
// at most one byte past the file limit is read, so a mistaken pipe (a
// video file) is refused by the loader's size check, not read into memory.
func (a *App) loadStdin(lim graph.Limits) (*graph.Graph, graph.Diags) {
	if a.Stdin == nil {
		return nil, graph.Diags{{File: stdinName, Severity: graph.SevError, Msg: "--graph -: no standard input"}}
	}
	max := lim.MaxFileBytes
	if max <= 0 {
		max = graph.DefaultLimits.MaxFileBytes
	}
	data, err := io.ReadAll(io.LimitReader(a.Stdin, max+1))
	if err != nil {
		return nil, graph.Diags{{File: stdinName, Severity: graph.SevError, Msg: "cannot read the graph from standard input: " + err.Error()}}
	}
	return graph.LoadLimited(stdinName, data, a.LookupEnv, lim)
}

// diagWriter is stderr when --log-format json is set: printDiags writes
// each diagnostic as a JSON log record there, everything else passes.
type diagWriter struct {
	io.Writer
}

// limitOptions are the graph loader's limits (graph.Limits), one flag and
// one environment variable each; the flag wins, then the variable, then
// graph.DefaultLimits. Every command that loads a graph honours them.
type limitOptions struct {
	bytes, depth, nodes, scalar int64
	flags                       *pflag.FlagSet // to tell "--max-graph-depth 0" from no flag
}

var limitKnobs = []struct {
	flag, env, usage string
	field            func(*limitOptions) *int64
}{
	{"max-graph-bytes", "SCHNITZEL_MAX_GRAPH_BYTES", "largest graph file read, in bytes (default 8 MiB)", func(o *limitOptions) *int64 { return &o.bytes }},
	{"max-graph-depth", "SCHNITZEL_MAX_GRAPH_DEPTH", "deepest nesting in a graph file (default 64)", func(o *limitOptions) *int64 { return &o.depth }},
	{"max-graph-nodes", "SCHNITZEL_MAX_GRAPH_NODES", "most values in a graph file after aliases and interpolations (default 100000)", func(o *limitOptions) *int64 { return &o.nodes }},
	{"max-graph-scalar-bytes", "SCHNITZEL_MAX_GRAPH_SCALAR_BYTES", "longest scalar in a graph file, in bytes (default 1 MiB)", func(o *limitOptions) *int64 { return &o.scalar }},
}

func (o *limitOptions) register(cmd *cobra.Command) {
	o.flags = cmd.PersistentFlags()
	for _, k := range limitKnobs {
		cmd.PersistentFlags().Int64Var(k.field(o), k.flag, 0, k.usage+"; env "+k.env)
	}
}

// graphLimits resolves the loader limits from the flags and environment.
func (a *App) graphLimits() (graph.Limits, error) {
	var vals [4]int64
	for i, k := range limitKnobs {
		v := *k.field(&a.limits)
		if v < 0 || (v == 0 && a.limits.flags != nil && a.limits.flags.Changed(k.flag)) {
			// 0 would silently mean "the default": say so instead.
			return graph.Limits{}, exitcode.Errorf(exitcode.Usage, "--%s must be a positive number, got %d", k.flag, v)
		}
		if raw := strings.TrimSpace(a.Getenv(k.env)); v == 0 && raw != "" {
			n, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || n <= 0 {
				return graph.Limits{}, exitcode.Errorf(exitcode.Usage, "%s must be a positive integer, got %q", k.env, raw)
			}
			v = n
		}
		vals[i] = v
	}
	const maxInt = int64(^uint(0) >> 1)
	return graph.Limits{
		MaxFileBytes:   vals[0],
		MaxDepth:       int(min(vals[1], maxInt)),
		MaxNodes:       int(min(vals[2], maxInt)),
		MaxScalarBytes: int(min(vals[3], maxInt)),
	}, nil
}

// loadFile loads a graph file within the configured limits. While it
// parses, the collector runs at GOGC=100 rather than the run's 400: the
// parse's garbage is most of the peak, and validate on a large file under
// the limits stays within 64 MiB (docs/benchmarks.md).
func (a *App) loadFile(path string) (*graph.Graph, graph.Diags, error) {
	lim, err := a.graphLimits()
	if err != nil {
		return nil, nil, err
	}
	if a.SetGCPercent != nil && a.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(100))
	}
	if path == "-" {
		g, diags := a.loadStdin(lim)
		return g, diags, nil
	}
	g, diags := graph.LoadFileLimited(path, a.LookupEnv, lim)
	return g, diags, nil
}
