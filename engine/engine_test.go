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
