package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/schnitzel-stream/schnitzel/configs"
	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/plugin"
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
		g, diags = a.loadGraph(path)
	}
	if g == nil {
		return nil, diags, exitcode.New(exitcode.Usage, nil)
	}
	// Validate even when loading found problems, so that one pass reports
	// every error in the file.
	plan, vdiags := graph.Validate(g, a.Registry, plugin.PolicyFromEnv(a.Getenv))
	diags = append(diags, vdiags...)
	graph.SortDiags(diags)
	if plan == nil || diags.HasErrors() || (strict && len(diags) > 0) {
		return nil, diags, exitcode.New(exitcode.Usage, nil)
	}
	return plan, diags, nil
}

// stdinName is how a graph read from standard input (--graph -) is named
// in diagnostics and the report.
const stdinName = "<stdin>"

// loadGraph loads a graph file, or standard input for "-".
func (a *App) loadGraph(path string) (*graph.Graph, graph.Diags) {
	if path != "-" {
		return graph.LoadFile(path, a.LookupEnv)
	}
	if a.Stdin == nil {
		return nil, graph.Diags{{File: stdinName, Severity: graph.SevError, Msg: "--graph -: no standard input"}}
	}
	data, err := io.ReadAll(io.LimitReader(a.Stdin, maxStdinGraph+1))
	if err != nil {
		return nil, graph.Diags{{File: stdinName, Severity: graph.SevError, Msg: "cannot read the graph from standard input: " + err.Error()}}
	}
	if len(data) > maxStdinGraph {
		return nil, graph.Diags{{File: stdinName, Severity: graph.SevError, Msg: fmt.Sprintf("graph on standard input is larger than %d bytes", maxStdinGraph)}}
	}
	return graph.Load(stdinName, data, a.LookupEnv)
}

// maxStdinGraph bounds what --graph - reads: a graph is small, a mistaken
// pipe (a video file) must not be read into memory.
const maxStdinGraph = 16 << 20

// diagWriter is stderr when --log-format json is set: printDiags writes
// each diagnostic as a JSON log record there, everything else passes.
type diagWriter struct {
	io.Writer
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
