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
			for _, pn := range plan.Nodes {
				if c, ok := pn.Decoded.(HTTPConfig); ok && (c.URL != env["SF_URL"] || !c.Forward || c.IdempotencyHeader == "") {
					t.Errorf("forwarder http config %+v", c)
				}
			}
		})
	}
}
