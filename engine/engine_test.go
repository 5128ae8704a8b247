package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const demo = `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource,
     config: {packets: [{kind: demo, source_id: d1, payload: {message: hello}}, {kind: demo, source_id: d1, payload: {message: world}}]}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefix: "EV "}}
edges:
  - {from: src, to: out}
`

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	return r
}

func TestRun(t *testing.T) {
	gf := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(gf, []byte(demo), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep, err := engine.Run(context.Background(), gf, engine.Options{Registry: registry(), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != "ok" || rep.Graph != gf || strings.Count(out.String(), "EV ") != 2 {
		t.Fatalf("status %q graph %q, stdout %q", rep.Status, rep.Graph, out.String())
	}
}

func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, graph, want string
		strict            bool
	}{
		{"unknown plugin", strings.Replace(demo, "PrintSink", "NoSuchSink", 1), "NoSuchSink", false},
		{"unknown key under strict", strings.Replace(demo, `prefix: "EV "`, `prefix: "EV ", colour: red`, 1), "colour", true},
		{"not yaml", "version: 2\nnodes: [", "", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gf := filepath.Join(dir, string(rune('a'+i))+".yaml")
			if err := os.WriteFile(gf, []byte(tc.graph), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := engine.Run(context.Background(), gf, engine.Options{Registry: registry(), Strict: tc.strict})
			var ie *engine.InvalidError
			if rep != nil || !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("report %v, err %v; want an InvalidError naming %q", rep, err, tc.want)
			}
		})
	}
}

func TestRunGraph(t *testing.T) {
	r := plugintest.RunGraph(t, demo, registry())
	if r.Report.Status != "ok" || !strings.Contains(r.Stdout, "EV ") || !strings.Contains(r.Stdout, "world") {
		t.Fatalf("status %q stdout %q", r.Report.Status, r.Stdout)
	}
}

// TestExecuteBuildFailure: a constructor error names the node and its line;
// an error from Started aborts before anything runs.
func TestExecuteBuildFailure(t *testing.T) {
	type none struct{}
	reg := registry()
	plugin.Register(reg, plugin.Spec[none]{
		Name: "schnitzel_stream.test:Broken", Role: plugin.RoleSink, Summary: "fails to build",
		New: func(none, plugin.Env) (any, error) { return nil, errors.New("no such device") },
	})
	broken := strings.Replace(demo, "schnitzel_stream.nodes.dev:PrintSink, config: {prefix: \"EV \"}", "schnitzel_stream.test:Broken", 1)
	plan, _, err := engine.Load("g.yaml", []byte(broken), engine.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := engine.Execute(context.Background(), plan, "g.yaml", engine.Options{Registry: reg})
	if rep != nil || err == nil || !strings.Contains(err.Error(), `g.yaml:5: node "out": no such device`) {
		t.Fatalf("report %v, err %v", rep, err)
	}

	closes := 0
	plugin.Register(reg, plugin.Spec[none]{
		Name: "schnitzel_stream.test:Closing", Role: plugin.RoleSink, Summary: "counts closes",
		New: func(none, plugin.Env) (any, error) { return &closing{n: &closes}, nil },
	})
	closing := strings.Replace(demo, "schnitzel_stream.nodes.dev:PrintSink, config: {prefix: \"EV \"}", "schnitzel_stream.test:Closing", 1)
	plan, _, err = engine.Load("g.yaml", []byte(closing), engine.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = engine.Execute(context.Background(), plan, "g.yaml", engine.Options{Registry: reg,
		Started: func(*engine.Executor) error { return errors.New("port in use") }})
	if rep != nil || err == nil || err.Error() != "port in use" || closes != 1 {
		t.Fatalf("report %v, err %v, closes %d (want the built node closed once)", rep, err, closes)
	}
}

type closing struct{ n *int }

func (c *closing) Process(context.Context, *packet.Packet, plugin.Emitter) error { return nil }
func (c *closing) Close(context.Context) error                                   { *c.n++; return nil }
