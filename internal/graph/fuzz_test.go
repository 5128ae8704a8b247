package graph

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// FuzzLoadValidate: no input may panic the loader or validator, and every
// error must say where it is (a line), except whole-file problems.
func FuzzLoadValidate(f *testing.F) {
	files, _ := filepath.Glob("../../configs/graphs/*.yaml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("version: 2\nnodes: [{id: a, plugin: 'x:Y'}]\nedges: [{from: a, to: a}]"))
	f.Add([]byte("a: ${b}\nb: ${a}"))
	f.Add([]byte("x: &a [1, *a]\n"))
	f.Add([]byte("version: 2\nnodes:\n  - id: s\n    kind: source\n    plugin: schnitzel_stream.nodes.dev:StaticSource\n    config: {packets: [{kind: [1]}]}\n"))
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		g, diags := Load("fuzz.yaml", data, env(map[string]string{"A": "1"}))
		for _, d := range diags {
			if d.File != "fuzz.yaml" {
				t.Fatalf("diag without file: %+v", d)
			}
		}
		if g == nil || diags.HasErrors() {
			return
		}
		_, vd := Validate(g, reg, plugin.Policy{AllowAll: true})
		for _, d := range vd {
			if d.Line == 0 {
				t.Fatalf("validation diag without a line: %s\ninput:\n%s", d, data)
			}
		}
	})
}
