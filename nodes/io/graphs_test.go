package ionodes

import (
	"path/filepath"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// TestStoreAndForwardGraphsValidate checks the example graphs against the
// real node specs: no unknown keys, the HTTP config as documented.
func TestStoreAndForwardGraphsValidate(t *testing.T) {
	r := testRegistry()
	dev.Register(r)
	durable.Register(r)
	env := map[string]string{"SF_URL": "http://user:pw@127.0.0.1:9/in", "SF_COUNT": "7"}
	for _, file := range []string{"sf_producer_v2.yaml", "sf_forwarder_v2.yaml"} {
		t.Run(file, func(t *testing.T) {
			g, d := graph.LoadFile(filepath.Join("..", "..", "configs", "graphs", file), func(k string) (string, bool) {
				v, ok := env[k]
				return v, ok
			})
			if d.HasErrors() {
				t.Fatal(d)
			}
			plan, vd := graph.Validate(g, r, plugin.Policy{AllowAll: true})
			if len(vd) > 0 {
				t.Fatalf("diagnostics (warnings count too):\n%v", vd)
			}
			limit, inFlight := 0, 0
			for _, pn := range plan.Nodes {
				if c, ok := pn.Decoded.(HTTPConfig); ok {
					inFlight = c.MaxInFlight * c.BatchMaxCount
					if c.URL != env["SF_URL"] || !c.Forward || c.IdempotencyHeader == "" {
						t.Errorf("forwarder http config %+v", c)
					}
				}
				if c, ok := pn.Decoded.(durable.SourceConfig); ok {
					limit = c.Limit
				}
			}
			// Each read is a durable lease commit: a read smaller than what
			// the sink has in flight makes the source, not the receiver, the
			// bottleneck (limit 10 capped an instant receiver at ~2,500/s).
			if inFlight > 0 && limit < inFlight {
				t.Errorf("source limit %d is below the sink's %d packets in flight", limit, inFlight)
			}
		})
	}
}
