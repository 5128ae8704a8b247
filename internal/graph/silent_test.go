package graph

import (
	"os"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// check loads and validates src and returns every diagnostic as text.
func check(t *testing.T, src string) string {
	t.Helper()
	g, d := Load("g.yaml", []byte(src), env(nil))
	if g != nil {
		_, vd := Validate(g, testRegistry(), plugin.Policy{AllowAll: true})
		d = append(d, vd...)
	}
	var lines []string
	for _, x := range d {
		lines = append(lines, x.String())
	}
	return strings.Join(lines, "\n")
}

const (
	src  = "  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource}\n"
	sink = "  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}\n"
	edge = "edges:\n  - {from: src, to: out}\n"
)

// TestNoSilentSuccess: every way of writing a graph that would run, do
// nothing and report ok is an error (or, where upstream accepts it, a
// warning) that names the line and the probable intent.
func TestNoSilentSuccess(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"nodez", "version: 2\nnodez:\n" + src, `g.yaml:2: nodez: unknown top-level key "nodez" (did you mean "nodes"?)`},
		{"no nodes key", "version: 2\nedges: []\n", "g.yaml:1: the graph has no nodes"},
		{"empty nodes", "version: 2\nnodes: []\n", "g.yaml:2: nodes: the graph has no nodes"},
		{"v1 unknown key", "version: 1\njob: a.b:C\njbo: x\n", `unknown v1 top-level key "jbo" (did you mean "job"?)`},
		{"no source", "version: 2\nnodes:\n  - {id: a, kind: initial, plugin: schnitzel_stream.nodes.dev:Identity}\n  - {id: b, plugin: schnitzel_stream.nodes.dev:Identity}\nedges:\n  - {from: a, to: b}\n  - {from: b, to: a}\n", "g.yaml:3: the graph has no source"},
		{"node key", "version: 2\nnodes:\n  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource, plugn: x}\n" + sink + edge, `unknown node key "plugn" (did you mean "plugin"?)`},
		{"node key far", "version: 2\nnodes:\n  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource, colour: x}\n" + sink + edge, `unknown node key "colour" (known: id, node_id, kind, plugin, config; keys starting with x- are ignored)`},
		{"edge key", "version: 2\nnodes:\n" + src + sink + "edges:\n  - {from: src, to: out, dts: x}\n", `unknown edge key "dts" (did you mean "dst"?)`},
		{"config key", "version: 2\nnodes:\n" + src + "  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefx: a}}\n" + edge, `g.yaml:4: node "out": config.prefx: unknown key "prefx" (did you mean "prefix"?)`},
		{"not forwarding", "version: 2\nnodes:\n" + src + "  - {id: mid, kind: node, plugin: schnitzel_stream.nodes.dev:PrintSink}\n" + sink + "edges:\n  - {from: src, to: mid}\n  - {from: mid, to: out}\n", `g.yaml:4: node "mid": PrintSink does not forward (forward: false), so "out" never receives a packet; set forward: true`},
		{"from_port no ports", "version: 2\nnodes:\n" + src + sink + "edges:\n  - {from: src, to: out, from_port: a}\n", `g.yaml:6: warning: edge src.a -> out: from_port "a": StaticSource declares no output ports`},
		{"id with newline", "version: 2\nnodes:\n  - {id: \"o\\nut\", kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource}\n", `g.yaml:3: node "o\nut": node_id contains a control character (U+000A)`},
		{"id with bidi override", "version: 2\nnodes:\n  - {id: \"a\\u202eb\", kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource}\n", `node_id contains a control character (U+202E)`},
		{"bare class name", "version: 2\nnodes:\n  - {id: src, kind: source, plugin: StaticSource}\n" + sink + edge, `g.yaml:3: warning: node "src": plugin "StaticSource": did you mean schnitzel_stream.nodes.dev:StaticSource?`},
		{"to_port not read", "version: 2\nnodes:\n" + src + sink + "edges:\n  - {from: src, to: out, dst_port: b}\n", `warning: edge src -> out.b: to_port "b": PrintSink does not read input ports (to_port ignored)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(t, tc.src); !strings.Contains(got, tc.want) {
				t.Errorf("got:\n%s\nwant a line with:\n%s", got, tc.want)
			}
		})
	}
}

// Things that are right must stay quiet.
func TestQuietWhenRight(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"plain", "version: 2\nnodes:\n" + src + sink + edge},
		{"x- keys", "version: 2\nx-note: hi\nnodes:\n  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource, x-why: test}\n" + sink + "edges:\n  - {from: src, to: out, x-label: a}\n"},
		{"forwarding sink", "version: 2\nnodes:\n" + src + "  - {id: mid, kind: node, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {forward: true}}\n" + sink + "edges:\n  - {from: src, to: mid}\n  - {from: mid, to: out}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(t, tc.src); got != "" {
				t.Errorf("diagnostics for a good graph:\n%s", got)
			}
		})
	}
}

// TestFormatDocNamesEveryKey keeps docs/graph-format.md complete: every
// key the loader knows is documented there.
func TestFormatDocNamesEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/graph-format.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]string{topKeysV1, topKeysV2, nodeKeySet, edgeKeySet, runtimeSet, kinds} {
		for _, k := range set {
			if !strings.Contains(string(doc), "`"+k+"`") && !strings.Contains(string(doc), "`__runtime__."+k+"`") {
				t.Errorf("docs/graph-format.md does not document %q", k)
			}
		}
	}
}
