package nodes_test

import (
	"testing"

	"github.com/schnitzel-stream/schnitzel/packs/vision/nodes"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// A detector built with the typed constructor and a plain Env (the legacy
// job) gets a lax Counters: it must still report every declared metric, in
// declaration order, the runner's after the node's own.
func TestModelAdapterMetricsOutsideRegistry(t *testing.T) {
	c := nodes.DefaultModelAdapterConfig()
	c.URL = "http://127.0.0.1:1/detect"
	n, err := nodes.NewModelAdapter(c, plugin.Env{NodeID: "det"})
	if err != nil {
		t.Fatal(err)
	}
	r := plugin.NewRegistry()
	nodes.Register(r)
	e, ok := r.Lookup("schnitzel_stream.packs.vision.nodes:ModelAdapterDetectorNode")
	if !ok {
		t.Fatal("ModelAdapterDetectorNode not registered")
	}
	got := n.(plugin.Metrics).Metrics()
	if len(got) != len(e.Metrics) {
		t.Fatalf("metrics %v, declared %v", got, e.Metrics)
	}
	for i, m := range got {
		if m.Name != e.Metrics[i].Name || m.Value != 0 {
			t.Errorf("metric %d: %s=%d, want %s=0", i, m.Name, m.Value, e.Metrics[i].Name)
		}
	}
}
