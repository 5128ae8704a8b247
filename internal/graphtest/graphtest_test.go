package graphtest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/graphtest"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/mapping"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const graphYAML = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 1}}
  - {id: mid, kind: node, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
`

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	mapping.Register(r)
	return r
}

// run writes the graph and a test file with the given cases and runs it.
func run(t *testing.T, cases string) []graphtest.Result {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(graphYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "g_test.yaml")
	if err := os.WriteFile(p, []byte("graph: g.yaml\ntests:\n"+cases), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := graphtest.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(context.Background(), f, graphtest.Options{Registry: registry(), Getenv: func(string) string { return "" }})
}

const twoIn = `    inputs:
      src:
        - {kind: tick, source_id: a, payload: {seq: 1, tag: x}}
        - {kind: tick, source_id: a, payload: {seq: 2, tag: y}}
`

func TestCases(t *testing.T) {
	cases := []struct {
		name   string
		expect string
		pass   bool
		want   string // in the failure text
	}{
		{"count ok", "count: 2", true, ""},
		{"count wrong", "count: 3", false, "got 2 packets, want 3"},
		{"subset ok", "packets: [{payload: {seq: 1}}, {payload: {seq: 2}}]", true, ""},
		{"value differs", "packets: [{payload: {seq: 1}}, {payload: {seq: 5}}]", false, "packet 1: payload.seq: got 2, want 5"},
		{"missing key", "packets: [{payload: {nope: 1}}, {payload: {seq: 2}}]", false, "payload.nope: missing"},
		{"order strict", "packets: [{payload: {seq: 2}}, {payload: {seq: 1}}]", false, "packet 0: payload.seq: got 1, want 2"},
		{"order any", "order: any, packets: [{payload: {seq: 2}}, {payload: {seq: 1}}]", true, ""},
		{"order any missing", "order: any, packets: [{payload: {seq: 9}}]", false, "expected packet 0 not received"},
		{"exact extra key", "match: exact, packets: [{payload: {seq: 1}}, {payload: {seq: 2}}]", false, "payload.tag: unexpected key"},
		{"exact ok", "match: exact, packets: [{payload: {seq: 1, tag: x}}, {payload: {seq: 2, tag: y}}]", true, ""},
		{"type differs", `packets: [{payload: {seq: "1"}}, {payload: {seq: 2}}]`, false, `got 1, want "1"`},
		{"condition ok", `condition: "payload.seq > 0 && kind == 'tick'"`, true, ""},
		{"condition fails", `condition: "payload.seq < 2"`, false, `1 packet(s) do not satisfy condition "payload.seq < 2"`},
		{"condition not bool", `condition: "payload.tag"`, false, "do not satisfy condition"},
		{"condition bad syntax", `condition: "payload.seq >"`, false, "invalid"},
		{"too few listed", "packets: [{payload: {seq: 1}}]", false, "got 2 packets, want 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := run(t, "  - name: c\n"+twoIn+"    expect:\n      out: {"+c.expect+"}\n")
			if len(rs) != 1 {
				t.Fatalf("%d results", len(rs))
			}
			r := rs[0]
			if r.Pass != c.pass {
				t.Fatalf("pass %v, want %v: %v", r.Pass, c.pass, r.Failures)
			}
			if c.want != "" && !strings.Contains(strings.Join(r.Failures, "\n"), c.want) {
				t.Errorf("failures do not say %q:\n%s", c.want, strings.Join(r.Failures, "\n"))
			}
		})
	}
}

// The live ticker never runs: with no inputs it is replaced by nothing.
func TestLiveSourceReplaced(t *testing.T) {
	rs := run(t, "  - name: none\n    expect:\n      out: {count: 0}\n      mid: {count: 0}\n")
	if !rs[0].Pass {
		t.Fatal(rs[0].Failures)
	}
}

func TestUnknownNodes(t *testing.T) {
	rs := run(t, "  - name: bad\n    inputs: {nope: []}\n    expect:\n      ghost: {count: 0}\n")
	got := strings.Join(rs[0].Failures, "\n")
	if rs[0].Pass || !strings.Contains(got, `no node "nope"`) || !strings.Contains(got, `no node "ghost"`) {
		t.Fatalf("got %v", rs[0].Failures)
	}
}

func TestBadTestFiles(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"no graph", "tests:\n  - {name: a, expect: {out: {count: 0}}}\n", "no graph"},
		{"no tests", "graph: g.yaml\n", "no tests"},
		{"typo", "graph: g.yaml\ntests:\n  - {name: a, expcet: {out: {count: 0}}}\n", `unknown key "expcet"`},
		{"no expect", "graph: g.yaml\ntests:\n  - {name: a}\n", "no expect"},
		{"empty expectation", "graph: g.yaml\ntests:\n  - {name: a, expect: {out: {}}}\n", "give count, packets, condition or several"},
		{"bad order", "graph: g.yaml\ntests:\n  - {name: a, expect: {out: {count: 1, order: random}}}\n", "not strict or any"},
		{"dup name", "graph: g.yaml\ntests:\n  - {name: a, expect: {out: {count: 1}}}\n  - {name: a, expect: {out: {count: 1}}}\n", "used at line 3"},
		{"top typo", "graph: g.yaml\ntest:\n  - {name: a}\n", "test"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x_test.yaml")
			if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := graphtest.LoadFile(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x_test.yaml") {
				t.Fatalf("err %v, want one naming the file and %q", err, c.want)
			}
		})
	}
}
