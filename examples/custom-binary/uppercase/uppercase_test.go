package uppercase

import (
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func TestUppercase(t *testing.T) {
	r := plugin.NewRegistry()
	Register(r)
	n := plugintest.Build(t, r, Name, "node", nil)
	in := packet.NewMap(2)
	in.Set("message", "hello")
	in.Set("value", int64(1))
	p := packet.New("demo", "d1", in, "", nil)
	raw := packet.New("raw", "d1", "not a map", "", nil)
	got := plugintest.Process(t, n, p, raw)
	if len(got) != 2 {
		t.Fatalf("%d packets out, want 2", len(got))
	}
	if s, _ := got[0].Payload.(*packet.Map).GetString("message"); s != "HELLO" || got[0].ID != p.ID {
		t.Errorf("out %q id %s, want HELLO with the same packet id", s, got[0].ID)
	}
	if s, _ := in.GetString("message"); s != "hello" {
		t.Errorf("the input payload was changed in place: %q", s)
	}
	if got[1] != raw {
		t.Errorf("a packet without the field should pass unchanged")
	}
}

// TestUppercaseInGraph runs the node between built-in ones through the
// real loader, validator and runtime.
func TestUppercaseInGraph(t *testing.T) {
	t.Setenv("ALLOWED_PLUGIN_PREFIXES", "schnitzel_stream.,example.")
	r := plugin.NewRegistry()
	dev.Register(r)
	Register(r)
	run := plugintest.RunGraph(t, `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource,
     config: {packets: [{kind: demo, source_id: d1, payload: {text: quiet}}]}}
  - {id: up, kind: node, plugin: example.nodes:Uppercase, config: {field: text}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}
edges:
  - {from: src, to: up}
  - {from: up, to: out}
`, r)
	if run.Report.Status != "ok" || !strings.Contains(run.Stdout, `"text": "QUIET"`) {
		t.Fatalf("status %s, stdout %s", run.Report.Status, run.Stdout)
	}
	// the node's own metric, declared in its Spec, reaches the report
	if v, _ := run.Report.Metrics.Get("node.up.upper_total"); v != int64(1) {
		t.Errorf("node.up.upper_total = %v, want 1", v)
	}
}

// TestConformance checks the node against the plugin contract (decoding,
// documented defaults, Close, metrics, goroutine leaks), as nodes/all does
// for the built-in nodes.
func TestConformance(t *testing.T) {
	r := plugin.NewRegistry()
	Register(r)
	plugintest.Conformance(t, r, map[string]plugintest.Fixture{
		Name: {Input: []*packet.Packet{packet.New("demo", "d1", packet.MapOf("message", "hi"), "", nil)}},
	})
}
