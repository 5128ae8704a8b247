package graph

import (
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	natsnodes "github.com/schnitzel-stream/schnitzel/nodes/nats"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const cutNodes = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {count: 3}}
  - {id: mid, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
`

func TestEdgeTransportErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, edges string
		line        int
		want        string
	}{
		{"unknown transport", "  - {from: src, to: mid, transport: grpc}\n", 7, `unknown edge transport "grpc" (known: inproc, nats)`},
		{"transport not a string", "  - {from: src, to: mid, transport: 3}\n", 7, "edge transport must be a non-empty string, got the integer 3"},
		{"nats key without nats", "  - {from: src, to: mid}\n  - {from: mid, to: out, stream: S}\n", 8, "edge key stream is for a transport: nats edge"},
		{"nats key on inproc", "  - {from: src, to: mid, transport: inproc, subject: a.b}\n", 7, "edge key subject is for a transport: nats edge (this edge's transport is inproc)"},
		{"wildcard subject", "  - {from: src, to: mid, transport: nats, subject: \"a.>\"}\n", 7, `edge subject "a.>": token ">"`},
		{"empty token", "  - {from: src, to: mid, transport: nats, subject: a..b}\n", 7, `edge subject "a..b": has an empty token`},
		{"template subject", "  - {from: src, to: mid, transport: nats, subject: \"a.{kind}\"}\n", 7, "literal"},
		{"dotted stream", "  - {from: src, to: mid, transport: nats, stream: a.b}\n", 7, `edge stream "a.b": a NATS name`},
		{"spaced durable", "  - {from: src, to: mid, transport: nats, durable: \"a b\"}\n", 7, `edge durable "a b"`},
		{"empty url entry", "  - {from: src, to: mid, transport: nats, url: \"nats://a:1,,nats://b:2\"}\n", 7, "edge url has an empty entry"},
		{"self loop", "  - {from: mid, to: mid, transport: nats}\n", 7, "cannot go from a node to itself"},
		{"into a source", "  - {from: mid, to: src, transport: nats}\n", 7, "source node must not have incoming edges: src"},
		{"out of a sink", "  - {from: out, to: mid, transport: nats}\n", 7, "sink node must not have outgoing edges: out"},
		{"same subject twice", "  - {from: src, to: mid, transport: nats, subject: c.x}\n  - {from: mid, to: out, transport: nats, subject: c.x}\n", 8, `subject "c.x" is already the subject of the nats edge at line 7`},
		{"connection not a mapping", "  - {from: src, to: mid, transport: nats, connection: creds.txt}\n", 7, "edge connection must be a mapping of node config keys"},
		{"cut's own key", "  - {from: src, to: mid, transport: nats, source_config: {durable: other}}\n", 7, "edge source_config.durable: the cut sets durable itself"},
		{"connection without nats", "  - {from: src, to: mid, connection: {user: u}}\n", 7, "edge key connection is for a transport: nats edge"},
		{"id taken", "  - {from: src, to: mid, transport: nats}\n  - {from: mid, to: cut_src_mid_pub}\n", 7, `needs node id "cut_src_mid_pub", which the graph already uses`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := cutNodes + tc.edges
			if tc.name == "id taken" {
				src = strings.Replace(src, "edges:\n", "  - {id: cut_src_mid_pub, kind: sink, plugin: \"schnitzel_stream.nodes.dev:PrintSink\"}\nedges:\n", 1)
				tc.line++
			}
			_, diags := Load("g.yaml", []byte(src), env(nil))
			for _, d := range diags.Errors() {
				if d.Line == tc.line && strings.Contains(d.Msg, tc.want) {
					return
				}
			}
			t.Fatalf("want an error at line %d containing %q, got %v", tc.line, tc.want, diags)
		})
	}
}

func cutRegistry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	natsnodes.Register(r)
	return r
}

func TestCutRewritesNatsEdges(t *testing.T) {
	for _, tc := range []struct {
		name, edges string
		env         map[string]string
		subject     string
		stream      string
		durable     string
		url         string
		parts       [][]string
	}{
		{
			name:    "defaults",
			edges:   "  - {from: src, to: mid, transport: nats}\n  - {from: mid, to: out}\n",
			subject: "cut.my_graph.src_mid", stream: "cut_my_graph_src_mid", durable: "cut_src_mid", url: DefaultNATSURL,
			parts: [][]string{{"src", "cut_src_mid_pub"}, {"mid", "out", "cut_src_mid_sub"}},
		},
		{
			name:    "NATS_URL",
			edges:   "  - {from: src, to: mid}\n  - {from: mid, to: out, transport: nats}\n",
			env:     map[string]string{"NATS_URL": "nats://10.0.0.1:4222"},
			subject: "cut.my_graph.mid_out", stream: "cut_my_graph_mid_out", durable: "cut_mid_out", url: "nats://10.0.0.1:4222",
			parts: [][]string{{"src", "mid", "cut_mid_out_pub"}, {"out", "cut_mid_out_sub"}},
		},
		{
			name:    "explicit",
			edges:   "  - {src: src, dst: mid, transport: nats, subject: a.b, stream: S1, durable: d1, url: \"nats://h:1\"}\n  - {from: mid, to: out}\n",
			env:     map[string]string{"NATS_URL": "nats://ignored:1"},
			subject: "a.b", stream: "S1", durable: "d1", url: "nats://h:1",
			parts: [][]string{{"src", "cut_src_mid_pub"}, {"mid", "out", "cut_src_mid_sub"}},
		},
		{
			name:  "inproc is no cut",
			edges: "  - {from: src, to: mid, transport: inproc}\n  - {from: mid, to: out}\n",
			parts: [][]string{{"src", "mid", "out"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, diags := Load("dir/my.graph.yaml", []byte(cutNodes+tc.edges), env(tc.env))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if _, vd := Validate(g, cutRegistry(), plugin.Policy{AllowAll: true}); vd.HasErrors() {
				t.Fatalf("the rewritten graph does not validate: %v", vd)
			}
			var got [][]string
			for _, p := range g.Parts() {
				var ids []string
				for _, n := range p {
					ids = append(ids, n.ID)
				}
				got = append(got, ids)
			}
			if strings.Join(flat(got), "|") != strings.Join(flat(tc.parts), "|") {
				t.Fatalf("parts %v, want %v", got, tc.parts)
			}
			if tc.subject == "" {
				if len(g.Cuts) != 0 {
					t.Fatalf("cuts %v", g.Cuts)
				}
				return
			}
			if len(g.Cuts) != 1 {
				t.Fatalf("cuts: %d", len(g.Cuts))
			}
			pubID, subID := CutNodeIDs(g.Cuts[0])
			pub, sub := g.NodeByID(pubID), g.NodeByID(subID)
			if pub.Plugin != CutSinkPlugin || sub.Plugin != CutSourcePlugin || pub.Kind != KindSink || sub.Kind != KindSource {
				t.Fatalf("cut nodes: %+v %+v", pub, sub)
			}
			for _, c := range []struct {
				n         *Node
				key, want string
			}{
				{pub, "subject", tc.subject}, {pub, "stream", tc.stream}, {pub, "url", tc.url},
				{sub, "filter_subject", tc.subject}, {sub, "stream", tc.stream}, {sub, "durable", tc.durable}, {sub, "url", tc.url},
			} {
				if v, _ := c.n.Config.GetString(c.key); v != c.want {
					t.Errorf("%s.%s = %q, want %q", c.n.ID, c.key, v, c.want)
				}
			}
			if v, _ := pub.Config.Get("create_stream"); v != true {
				t.Errorf("create_stream = %v", v)
			}
			if v, _ := sub.Config.Get("follow"); v != true {
				t.Errorf("follow = %v", v)
			}
			if pub.Pos.Line != g.Cuts[0].Pos.Line || g.ConfigPos(sub, "url").Line != g.Cuts[0].Pos.Line {
				t.Errorf("cut nodes are not placed on the edge's line %d", g.Cuts[0].Pos.Line)
			}
		})
	}
}

// TestCutPassesNodeKeys: connection goes to both cut nodes, sink_config
// and source_config to one side each, and the nodes' own config checks
// refuse a bad key or value at the edge's line.
func TestCutPassesNodeKeys(t *testing.T) {
	edges := `  - from: src
    to: mid
    transport: nats
    connection: {user: site1, password: pw, tls_ca_file: ca.pem}
    sink_config: {max_age_sec: 3600}
    source_config: {ack_wait_sec: 5}
  - {from: mid, to: out}
`
	g, diags := Load("g.yaml", []byte(cutNodes+edges), env(nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if _, vd := Validate(g, cutRegistry(), plugin.Policy{AllowAll: true}); vd.HasErrors() {
		t.Fatalf("the rewritten graph does not validate: %v", vd)
	}
	pubID, subID := CutNodeIDs(g.Cuts[0])
	pub, sub := g.NodeByID(pubID), g.NodeByID(subID)
	for _, c := range []struct {
		n    *Node
		key  string
		want any
	}{
		{pub, "user", "site1"}, {sub, "user", "site1"}, {pub, "tls_ca_file", "ca.pem"}, {sub, "password", "pw"},
		{pub, "max_age_sec", int64(3600)}, {sub, "ack_wait_sec", int64(5)},
	} {
		if v, _ := c.n.Config.Get(c.key); v != c.want {
			t.Errorf("%s.%s = %v, want %v", c.n.ID, c.key, v, c.want)
		}
	}
	if _, has := sub.Config.Get("max_age_sec"); has {
		t.Error("sink_config reached the source")
	}
	if _, has := pub.Config.Get("ack_wait_sec"); has {
		t.Error("source_config reached the sink")
	}

	for _, tc := range []struct{ extra, want string }{
		{"    source_config: {ack_wait_sec: -1}\n", "ack_wait_sec must be > 0"},
		{"    sink_config: {max_agee_sec: 1}\n", `unknown key "max_agee_sec"`},
	} {
		src := cutNodes + "  - from: src\n    to: mid\n    transport: nats\n" + tc.extra + "  - {from: mid, to: out}\n"
		g, diags := Load("g.yaml", []byte(src), env(nil))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		_, vd := Validate(g, cutRegistry(), plugin.Policy{AllowAll: true})
		found := false
		for _, d := range vd.Errors() {
			found = found || strings.Contains(d.Msg, tc.want) && d.Line >= 7 && d.Line <= 10
		}
		if !found {
			t.Errorf("%s: want an error near the edge (lines 7-10) containing %q, got %v", strings.TrimSpace(tc.extra), tc.want, vd)
		}
	}
}

func flat(parts [][]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, strings.Join(p, ","))
	}
	return out
}

// A part round-trips through WriteV2: the written file loads and validates
// with the same nodes, configs and edges.
func TestPartWritesStandaloneGraph(t *testing.T) {
	src := cutNodes + "  - {from: src, to: mid, transport: nats}\n  - {from: mid, to: out}\n"
	src = strings.Replace(src, `"schnitzel_stream.nodes.dev:Identity"}`, `"schnitzel_stream.nodes.dev:Identity", config: {__runtime__: {inbox_max: 7}}}`, 1)
	g, diags := Load("g.yaml", []byte(src), env(nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	part, err := g.Part("out")
	if err != nil {
		t.Fatal(err)
	}
	data, err := WriteV2(part, "part 2")
	if err != nil {
		t.Fatal(err)
	}
	back, diags := Load("part.yaml", data, env(nil))
	if diags.HasErrors() {
		t.Fatalf("%v\n%s", diags, data)
	}
	if _, vd := Validate(back, cutRegistry(), plugin.Policy{AllowAll: true}); vd.HasErrors() {
		t.Fatalf("%v\n%s", vd, data)
	}
	if len(back.Nodes) != 3 || len(back.Edges) != 2 || len(back.Cuts) != 0 {
		t.Fatalf("nodes %d edges %d cuts %d:\n%s", len(back.Nodes), len(back.Edges), len(back.Cuts), data)
	}
	if mid := back.NodeByID("mid"); mid == nil || mid.Runtime.InboxMax != 7 {
		t.Fatalf("mid's __runtime__ lost:\n%s", data)
	}
	sub := back.NodeByID("cut_src_mid_sub")
	if d, _ := sub.Config.GetString("durable"); sub.Plugin != CutSourcePlugin || d != "cut_src_mid" {
		t.Fatalf("source lost its config:\n%s", data)
	}
	if _, err := g.Part("nope"); err == nil || !strings.Contains(err.Error(), `no node "nope"`) {
		t.Fatalf("Part(nope): %v", err)
	}
}
