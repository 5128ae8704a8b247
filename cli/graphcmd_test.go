package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
)

// A node id or port name is drawn as label text: whatever it holds, the
// Mermaid file has one line per node and per edge and no line of the id's
// own (an id once closed its label and added a click directive).
func TestMermaidLabelsCannotInjectLines(t *testing.T) {
	evil := `x\"]) \n  click src \"javascript:alert(1)\"\n  y([\"|#&<b>\u2028z`
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource"}
  - {id: "` + evil + `", kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: src, to: "` + evil + `", from_port: "a|b\"c", to_port: "d\ne"}
`
	g, diags := graph.Load("g.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if g == nil || len(diags.Errors()) > 0 {
		t.Fatalf("load: %v", diags)
	}
	var b strings.Builder
	writeMermaid(&b, g)
	out := b.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 lines (header, 2 nodes, 1 edge), got %d:\n%s", len(lines), out)
	}
	for _, l := range lines[1:3] {
		// id[("label")] or id(["label"]): exactly the two quotes we wrote.
		if strings.Count(l, `"`) != 2 || strings.ContainsRune(l, '\u2028') {
			t.Errorf("label not escaped: %q", l)
		}
	}
	if edge := lines[3]; strings.Count(edge, "|") != 2 || strings.Contains(edge, `"`) {
		t.Errorf("edge label not escaped: %q", edge)
	}
}

// doctor is one-shot: it runs at GOGC=100, not the run's 400 (at 400 a
// large graph under the limits took it past 128 MiB).
func TestDoctorRunsAtGOGC100(t *testing.T) {
	var set []int
	a := &App{Getenv: func(string) string { return "" }, SetGCPercent: func(p int) { set = append(set, p) }}
	c := oneShotGC(a, &cobra.Command{RunE: func(*cobra.Command, []string) error { return nil }})
	if err := c.RunE(c, nil); err != nil || len(set) != 1 || set[0] != 100 {
		t.Fatalf("err %v, GC percents set %v, want [100]", err, set)
	}
}
