package cli

import (
	"fmt"
	"io"
	"io/fs"

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
		g, diags = graph.LoadFile(path, a.LookupEnv)
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

func printDiags(w io.Writer, diags graph.Diags) {
	for _, d := range diags {
		fmt.Fprintln(w, redact.Text(d.String())) // a config error may quote a URL
	}
}
