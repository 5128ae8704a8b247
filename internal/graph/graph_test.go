package graph

import (
	"math"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func testRegistry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	return r
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestScalarsFollowYAML11AsOmegaConf(t *testing.T) {
	src := `
a: yes
b: No
c: on
d: OFF
e: 010
f: 0x10
g: 1_000
h: 1e3
i: ~
j: 0o17
k: 2026-02-14
l: "yes"
m: 1.5
n: -7
o: .inf
p: 1:30
q: 99999999999999999999
r: TRUE
`
	d, err := parseYAML([]byte(src), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	m := d.root.(*packet.Map)
	want := map[string]any{
		"a": true, "b": false, "c": true, "d": false, "e": int64(8), "f": int64(16), "g": int64(1000),
		"h": 1000.0, "i": nil, "j": "0o17", "k": "2026-02-14", "l": "yes", "m": 1.5, "n": int64(-7),
		"p": int64(90), "r": true,
	}
	for k, w := range want {
		got, _ := m.Get(k)
		if got != w {
			t.Errorf("%s: got %#v, want %#v", k, got, w)
		}
	}
	if o, _ := m.Get("o"); o != math.Inf(1) {
		t.Errorf("o: got %v", o)
	}
	if q, _ := m.Get("q"); packet.PyStr(q) != "99999999999999999999" {
		t.Errorf("q: big int lost: %v", q)
	}
}

func TestInterpolation(t *testing.T) {
	src := `
version: 2
x-vars: {name: cam7, n: 3, lit: '\${not}', inj: "${oc.env:INJECT}"}
nodes:
  - id: src
    kind: source
    plugin: ${oc.env:SRC_PLUGIN,schnitzel_stream.nodes.dev:StaticSource}
    config:
      packets:
        - kind: ${oc.env:KIND}
          source_id: ${x-vars.name}
          payload:
            n: ${x-vars.n}
            fwd: ${oc.env:MISSING,false}
            num: ${oc.env:MISSING,30}
            empty: ${oc.env:MISSING,}
            nul: ${oc.env:MISSING,null}
            mixed: "id-${x-vars.name}-${x-vars.n}"
            escaped: \${not}
            litref: ${x-vars.lit}
            inj: ${oc.env:INJECT}
            injref: ${x-vars.inj}
            later: ${x-later.m}
x-later: {m: {x: "${oc.env:KIND}"}}
`
	// An env value and an escaped literal are results: a reference to them
	// does not interpolate them again (OmegaConf); a reference to a key
	// later in the file gets it resolved.
	g, diags := Load("g.yaml", []byte(src), env(map[string]string{"KIND": "demo", "INJECT": "${oc.env:KIND}"}))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	n := g.Nodes[0]
	if n.Plugin != "schnitzel_stream.nodes.dev:StaticSource" {
		t.Errorf("plugin = %q", n.Plugin)
	}
	pk, _ := n.Config.Get("packets")
	item := pk.([]any)[0].(*packet.Map)
	if k, _ := item.Get("kind"); k != "demo" {
		t.Errorf("kind = %#v", k)
	}
	if s, _ := item.Get("source_id"); s != "cam7" {
		t.Errorf("source_id = %#v", s)
	}
	pl, _ := item.Get("payload")
	p := pl.(*packet.Map)
	for k, w := range map[string]any{"n": int64(3), "fwd": false, "num": int64(30), "empty": "", "nul": nil, "mixed": "id-cam7-3", "escaped": "${not}",
		"litref": "${not}", "inj": "${oc.env:KIND}", "injref": "${oc.env:KIND}"} {
		if got, _ := p.Get(k); got != w {
			t.Errorf("%s = %#v, want %#v", k, got, w)
		}
	}
	later, _ := p.Get("later")
	if m, ok := later.(*packet.Map); !ok {
		t.Errorf("later = %#v, want a mapping", later)
	} else if x, _ := m.Get("x"); x != "demo" {
		t.Errorf("later.x = %#v, want demo", x)
	}
}

func TestInterpolationErrorsNameTheLine(t *testing.T) {
	src := "version: 2\nnodes:\n  - id: a\n    kind: source\n    plugin: schnitzel_stream.nodes.dev:StaticSource\n    config:\n      packets: ${oc.env:NOPE}\n"
	_, diags := Load("g.yaml", []byte(src), env(nil))
	if !diags.HasErrors() {
		t.Fatal("want an error")
	}
	d := diags.Errors()[0]
	if d.Line != 7 || !strings.Contains(d.Msg, `"NOPE" is not set`) {
		t.Errorf("got %s", d)
	}
}

func TestVersionDetection(t *testing.T) {
	cases := []struct {
		src     string
		version int
		err     string
	}{
		{"nodes: []", 2, ""},
		{"edges: []", 2, ""},
		{"job: schnitzel_stream.jobs.x:Y", 1, ""},
		{"job: a.b:C\nnodes: []", 0, "ambiguous"},
		{"version: '2'\nnodes: []", 2, ""},
		{"version: 3", 0, "unsupported graph spec version: 3"},
		{"version: two", 0, "version must be int"},
		{"- a\n- b", 0, "top-level must be a mapping"},
		{"version: 1", 1, "requires 'job'"},
	}
	for _, c := range cases {
		g, diags := Load("g.yaml", []byte(c.src), env(nil))
		if c.err != "" {
			if !strings.Contains(diags.Error(), c.err) {
				t.Errorf("%q: want error %q, got %v", c.src, c.err, diags)
			}
			continue
		}
		if diags.HasErrors() || g.Version != c.version {
			t.Errorf("%q: version %v diags %v", c.src, g, diags)
		}
	}
}

func TestValidationReportsEveryErrorWithLine(t *testing.T) {
	src := `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
  - id: src
    plugin: schnitzel_stream.nodes.dev:Identity
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config:
      forward: maybe
      prefx: "x"
  - id: evil
    plugin: bad.module:Thing
  - id: typo
    plugin: schnitzel_stream.nodes.dev:PrintSnk
  - id: f
    kind: source
    plugin: schnitzel_stream.nodes.dev:FooSource
  - id: bar
    kind: sink
    plugin: schnitzel_stream.nodes.dev:BarSink
  - id: wrongkind
    kind: Source
    plugin: schnitzel_stream.nodes.dev:Identity
edges:
  - from: src
    to: nowhere
  - {from: f, to: bar}
  - {src: out, dst: src}
  - {from: src, to: out, from_port: 9bad}
`
	g, diags := Load("graph.yaml", []byte(src), env(nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, vd := Validate(g, testRegistry(), plugin.PolicyFromEnv(func(string) string { return "" }))
	want := []string{
		`graph.yaml:6: node "src": duplicate node_id: src (first defined at line 3)`,
		`graph.yaml:12: node "out": config.forward: expected a boolean (true/false), got the string "maybe"`,
		`graph.yaml:13: node "out": config.prefx: unknown key "prefx" (did you mean "prefix"?)`,
		`graph.yaml:15: node "evil": plugin "bad.module:Thing" is not allowed: module "bad.module" is not under ALLOWED_PLUGIN_PREFIXES (schnitzel_stream.,ai.); add its prefix there, or set ALLOW_ALL_PLUGINS=true for dev-only use`,
		`graph.yaml:17: node "typo": plugin "schnitzel_stream.nodes.dev:PrintSnk" is not registered in this build (did you mean schnitzel_stream.nodes.dev:PrintSink?)`,
		`graph.yaml:25: node "wrongkind": unsupported node kind: Source`,
		`graph.yaml:29: edge src -> nowhere: unknown node "nowhere"`,
		`graph.yaml:30: edge f -> bar: packet kind mismatch: f -> bar (['foo'] not compatible with ['bar'])`,
		`edge out -> src: source node must not have incoming edges: src`,
		`edge out -> src: sink node must not have outgoing edges: out`,
		`graph.yaml:32: edge src.9bad -> out: edge from_port is not a valid identifier: 9bad`,
	}
	all := ""
	for _, d := range vd {
		all += d.String() + "\n"
	}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in\n%s", w, all)
		}
	}
	for _, d := range vd {
		if d.Line == 0 {
			t.Errorf("diagnostic without a line: %s", d)
		}
	}
}

func TestCycles(t *testing.T) {
	base := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource"}
  - {id: a, kind: %s, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: b, plugin: "schnitzel_stream.nodes.dev:Identity"}
edges:
  - {from: src, to: a}
  - {from: a, to: b}
  - {from: b, to: a}
`
	pol := plugin.Policy{AllowAll: true}
	for kind, wantErr := range map[string]bool{"node": true, "delay": false, "initial": false} {
		g, d := Load("g.yaml", []byte(strings.Replace(base, "%s", kind, 1)), env(nil))
		if d.HasErrors() {
			t.Fatal(d)
		}
		plan, vd := Validate(g, testRegistry(), pol)
		if wantErr {
			if !strings.Contains(vd.Error(), "cycle without a delay/initial node: a -> b -> a") {
				t.Errorf("kind %s: %v", kind, vd)
			}
		} else if plan == nil || !plan.Cyclic {
			t.Errorf("kind %s: want a cyclic plan, got %v", kind, vd)
		}
	}
}

// A cycle nothing can leave validates with a warning at the cycle's line;
// one with an edge out of it does not.
func TestClosedCycleWarns(t *testing.T) {
	base := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource"}
  - {id: a, kind: delay, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: b, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: src, to: a}
  - {from: a, to: b}
  - {from: b, to: a}
`
	for name, c := range map[string]struct {
		extra string
		warn  bool
	}{
		"closed": {"  - {from: src, to: out}\n", true},
		"open":   {"  - {from: b, to: out}\n", false},
	} {
		g, d := Load("g.yaml", []byte(base+c.extra), env(nil))
		if d.HasErrors() {
			t.Fatal(d)
		}
		plan, vd := Validate(g, testRegistry(), plugin.Policy{AllowAll: true})
		if vd.HasErrors() || plan == nil {
			t.Fatalf("%s: %v", name, vd)
		}
		var hit *Diag
		for i := range vd {
			if strings.Contains(vd[i].Msg, "has no edge leaving it") {
				hit = &vd[i]
			}
		}
		if (hit != nil) != c.warn {
			t.Errorf("%s: warning %v, want %v (%v)", name, hit != nil, c.warn, vd)
		}
		if hit != nil && (hit.Severity != SevWarning || hit.Line != 4 || !strings.Contains(hit.Msg, "a -> b -> a")) {
			t.Errorf("%s: %+v", name, *hit)
		}
	}
}

func TestAliasesAndRuntimeConfig(t *testing.T) {
	src := `version: 2
nodes:
  - node_id: s
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
  - id: k
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config:
      __runtime__: {inbox_max: "2", inbox_max_bytes: 16777216, inbox_overflow: " DROP_OLDEST "}
      transport: inproc
      prefix: "P "
edges:
  - {src: s, dst: k, from: ignored, to: ignored}
`
	g, d := Load("g.yaml", []byte(src), env(nil))
	if d.HasErrors() {
		t.Fatal(d)
	}
	k := g.Nodes[1]
	if g.Nodes[0].ID != "s" || g.Edges[0].From != "s" || g.Edges[0].To != "k" {
		t.Errorf("aliases: %+v %+v", g.Nodes[0], g.Edges[0])
	}
	if k.Runtime.InboxMax != 2 || k.Runtime.InboxMaxBytes != 16<<20 || k.Runtime.Overflow != OverflowDropOldest || k.Transport != "inproc" {
		t.Errorf("runtime: %+v transport %q", k.Runtime, k.Transport)
	}
	if _, has := k.Config.Get("__runtime__"); has {
		t.Error("__runtime__ must be stripped from the plugin config")
	}
	if _, has := k.Config.Get("transport"); has {
		t.Error("transport must be stripped from the plugin config")
	}
	if _, vd := Validate(g, testRegistry(), plugin.Policy{AllowAll: true}); vd.HasErrors() {
		t.Error(vd)
	}
}

func TestPolicy(t *testing.T) {
	cases := []struct {
		env    map[string]string
		plugin string
		ok     bool
	}{
		{nil, "schnitzel_stream.nodes.dev:X", true},
		{nil, "ai.x:Y", true},
		{nil, "other.x:Y", false},
		{map[string]string{"ALLOWED_PLUGIN_PREFIXES": "acme"}, "acme.x:Y", true},
		{map[string]string{"ALLOWED_PLUGIN_PREFIXES": "acme"}, "acmebad.x:Y", false},
		{map[string]string{"ALLOWED_PLUGIN_PREFIXES": "acme"}, "schnitzel_stream.x:Y", false},
		{map[string]string{"ALLOWED_PLUGIN_PREFIXES": " acme. , other. "}, "other.x:Y", true},
		{map[string]string{"ALLOW_ALL_PLUGINS": " YES "}, "anything:Y", true},
		{map[string]string{"ALLOW_ALL_PLUGINS": "0"}, "anything:Y", false},
	}
	for _, c := range cases {
		p := plugin.PolicyFromEnv(func(k string) string { return c.env[k] })
		if p.Allowed(c.plugin) != c.ok {
			t.Errorf("%v %s: want %v", c.env, c.plugin, c.ok)
		}
	}
}

func TestRuntimeConfigErrors(t *testing.T) {
	cases := []struct{ runtime, want string }{
		{`{inbox_max: 0}`, "__runtime__.inbox_max must be a positive integer, got the integer 0"},
		{`{inbox_max_bytes: -1}`, "__runtime__.inbox_max_bytes must be a positive integer (bytes), got the integer -1"},
		{`{inbox_max_bytes: lots}`, `__runtime__.inbox_max_bytes must be a positive integer (bytes), got the string "lots"`},
		{`{inbox_overflow: spill}`, "__runtime__.inbox_overflow must be one of block, drop_new, drop_oldest, error"},
		{`[1]`, "__runtime__ must be a mapping"},
	}
	for _, c := range cases {
		src := "version: 2\nnodes:\n  - {id: s, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource}\n" +
			"  - {id: k, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {__runtime__: " + c.runtime + "}}\n" +
			"edges:\n  - {from: s, to: k}\n"
		_, d := Load("g.yaml", []byte(src), env(nil))
		if !d.HasErrors() || !strings.Contains(d.Error(), c.want) || !strings.Contains(d.Error(), "g.yaml:4") {
			t.Errorf("%s: %v, want %q at g.yaml:4", c.runtime, d, c.want)
		}
	}
	_, d := Load("g.yaml", []byte("version: 2\nnodes:\n  - {id: s, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource, config: {__runtime__: {inbox_size: 3}}}\n"), env(nil))
	if w := d.Warnings(); d.HasErrors() || len(w) != 1 || !strings.Contains(w[0].String(), "known: inbox_max, inbox_max_bytes, inbox_overflow") {
		t.Errorf("unknown key: %v", d)
	}
}

// TestPayloadProfiles: frames (an out kind "frame": inproc_any) must not
// reach a node that writes packets as JSON (json_portable), checked before
// kinds and reported at the edge, as upstream (HEAD) does.
func TestPayloadProfiles(t *testing.T) {
	r := testRegistry()
	plugin.Register(r, plugin.Spec[dev.Empty]{Name: "t.frames:Src", Role: plugin.RoleSource, Out: []string{"frame"},
		New: func(dev.Empty, plugin.Env) (any, error) { return nil, nil }})
	plugin.Register(r, plugin.Spec[dev.Empty]{Name: "t.json:Sink", Role: plugin.RoleSink, InProfile: plugin.ProfileJSON,
		New: func(dev.Empty, plugin.Env) (any, error) { return nil, nil }})
	plugin.Register(r, plugin.Spec[dev.Empty]{Name: "t.frames:Sink", Role: plugin.RoleSink, In: []string{"frame"}, InProfile: plugin.ProfileInproc,
		New: func(dev.Empty, plugin.Env) (any, error) { return nil, nil }})
	cases := []struct{ src, sink, want string }{
		{"t.frames:Src", "t.json:Sink", "g.yaml:6: edge a -> b: payload profile mismatch: a(inproc_any) -> b(json_portable) is not compatible (a emits in-process values such as decoded frames, which b cannot take)"},
		{"t.frames:Src", "t.frames:Sink", ""},
		{"schnitzel_stream.nodes.dev:StaticSource", "t.json:Sink", ""}, // no profile on the source: nothing to check
	}
	for _, c := range cases {
		src := "version: 2\nnodes:\n  - {id: a, kind: source, plugin: \"" + c.src + "\"}\n  - {id: b, kind: sink, plugin: \"" + c.sink + "\"}\nedges:\n  - {from: a, to: b}\n"
		g, d := Load("g.yaml", []byte(src), env(nil))
		if d.HasErrors() {
			t.Fatal(d)
		}
		_, vd := Validate(g, r, plugin.Policy{AllowAll: true})
		if got := vd.Error(); got != c.want {
			t.Errorf("%s -> %s:\n got  %q\n want %q", c.src, c.sink, got, c.want)
		}
	}
}
