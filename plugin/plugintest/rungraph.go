package plugintest

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// GraphRun is what RunGraph saw: the run report and what print sinks wrote.
type GraphRun struct {
	Report *engine.Report
	Stdout string
}

// RunGraph runs a v2 graph (YAML text) with the nodes in reg through the
// real loader, validator and runtime (engine.Run's path), and fails the
// test when the graph is invalid, a node cannot be built or a node fails.
// ${oc.env:...} reads the process environment (t.Setenv works).
func RunGraph(t testing.TB, yaml string, reg *plugin.Registry) *GraphRun {
	t.Helper()
	r, err := TryRunGraph(context.Background(), yaml, reg)
	if err != nil {
		t.Fatalf("run graph: %v\nstdout:\n%s", err, r.Stdout)
	}
	return r
}

// TryRunGraph is RunGraph returning the error; the GraphRun is never nil
// (Report is nil when the graph did not run).
func TryRunGraph(ctx context.Context, yaml string, reg *plugin.Registry) (*GraphRun, error) {
	var out bytes.Buffer // the runtime serialises the sinks' writes
	r := &GraphRun{}
	opts := engine.Options{Registry: reg, Stdout: &out}
	plan, _, err := engine.Load("graph.yaml", []byte(yaml), opts)
	if err == nil {
		r.Report, err = engine.Execute(ctx, plan, "graph.yaml", opts)
	}
	if err == nil && r.Report.Error != nil {
		e := r.Report.Error
		err = fmt.Errorf("node %q failed (%s): %s", e.Node, e.Phase, e.Message)
	}
	r.Stdout = out.String()
	return r, err
}
