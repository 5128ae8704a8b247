package mapping_test

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/mapping"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func graphReg() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	mapping.Register(r)
	return r
}

const head = `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
    config:
      packets:
        - payload: {t: 35, name: a}
        - payload: {t: 25, name: b}
        - payload: {t: 5, name: c}
`

// TestValidationErrors checks that a bad expression fails validation at
// the key's line, with the expression's column.
func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name, node string
		want       []string // each must be in one error
	}{
		{"syntax", `  - id: m
    kind: node
    plugin: schnitzel_stream.nodes.map:Mapping
    config:
      set:
        payload.ok: payload.t
        payload.total: (payload.t + ))
`, []string{`graph.yaml:17: node "m": config.set.payload.total: unexpected token Bracket(")") at column 14`}},
		{"filter not bool", `  - id: f
    kind: node
    plugin: schnitzel_stream.nodes.map:Filter
    config:
      condition: len(payload.name)
`, []string{`graph.yaml:15: node "f": config.condition: expected bool, but got int`}},
		{"switch case and port", `  - id: s
    kind: node
    plugin: schnitzel_stream.nodes.map:Switch
    config:
      cases:
        - {port: hot, condition: payload.t > 30}
        - {port: "9x", condition: "len(1, 2)"}
`, []string{`graph.yaml:17: node "s": config.cases[1].port: port "9x" must be a name`, `graph.yaml:17: node "s": config.cases[1].condition: invalid number of arguments`}},
		{"bad path", `  - id: m
    kind: node
    plugin: schnitzel_stream.nodes.map:Mapping
    config:
      set:
        total: "1"
      delete: [payload..x]
`, []string{`graph.yaml:16: node "m": config.set.total: path "total" must start with payload`, `config.delete[0]: path "payload..x" has an empty key`}},
		{"unknown function", `  - id: f
    kind: node
    plugin: schnitzel_stream.nodes.map:Filter
    config:
      condition: nosuch(payload.t)
`, []string{`config.condition: unknown name nosuch at column 1`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := engine.Load("graph.yaml", []byte(head+tc.node), engine.Options{Registry: graphReg()})
			var inv *engine.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("load: %v, want an invalid graph", err)
			}
			var msgs []string
			for _, d := range inv.Diags.Errors() {
				msgs = append(msgs, d.String())
			}
			all := strings.Join(msgs, "\n")
			for _, w := range tc.want {
				if w != "" && !strings.Contains(all, w) {
					t.Errorf("no error %q in\n%s", w, all)
				}
			}
		})
	}
}

const switchGraph = head + `  - id: m
    kind: node
    plugin: schnitzel_stream.nodes.map:Mapping
    config:
      set:
        payload.f: payload.t * 9 / 5 + 32
  - id: sw
    kind: node
    plugin: schnitzel_stream.nodes.map:Switch
    config:
      cases:
        - {port: hot, condition: payload.t > 30}
        - {port: warm, condition: payload.t > 20}
  - id: hot
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "HOT "}
  - id: warm
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "WARM "}
  - id: rest
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "REST "}
edges:
  - {from: src, to: m}
  - {from: m, to: sw}
  - {from: sw, from_port: hot, to: hot}
  - {from: sw, from_port: warm, to: warm}
  - {from: sw, from_port: default, to: rest}
`

func TestSwitchGraph(t *testing.T) {
	r := plugintest.RunGraph(t, switchGraph, graphReg())
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		prefix, _, _ := strings.Cut(l, " ")
		name := l[strings.Index(l, `"name": "`)+9:][:1]
		got = append(got, prefix+"="+name)
	}
	sort.Strings(got)
	if s := strings.Join(got, ","); s != "HOT=a,REST=c,WARM=b" {
		t.Errorf("routes %s\n%s", s, r.Stdout)
	}
	if !strings.Contains(r.Stdout, `"f": 95.0`) {
		t.Errorf("mapping did not run before the switch:\n%s", r.Stdout)
	}
	// a port the switch does not have is a validation error
	bad := strings.Replace(switchGraph, "from_port: warm", "from_port: wram", 1)
	_, _, err := engine.Load("graph.yaml", []byte(bad), engine.Options{Registry: graphReg()})
	if err == nil || !strings.Contains(err.Error(), `node "sw" has no output port "wram" (did you mean "warm"?)`) {
		t.Errorf("bad from_port: %v", err)
	}
}

func TestErrorPortGraph(t *testing.T) {
	g := head + `  - id: m
    kind: node
    plugin: schnitzel_stream.nodes.map:Mapping
    config:
      set:
        payload.r: 100 % (payload.t - 25)
      error_port: failed
  - id: ok
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "OK "}
  - id: bad
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "BAD "}
edges:
  - {from: src, to: m}
  - {from: m, to: ok}
  - {from: m, from_port: failed, to: bad}
`
	r := plugintest.RunGraph(t, g, graphReg())
	var ok, bad int
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		switch {
		case strings.HasPrefix(l, "OK ") && strings.Contains(l, `"r": `):
			ok++
		case strings.HasPrefix(l, "BAD ") && strings.Contains(l, `"name": "b"`) && strings.Contains(l, `integer divide by zero`) && !strings.Contains(l, `"r": `):
			bad++
		default:
			t.Errorf("unexpected line %s", l)
		}
	}
	if ok != 2 || bad != 1 {
		t.Errorf("ok %d bad %d:\n%s", ok, bad, r.Stdout)
	}
	if r.Report.Status != "ok" {
		t.Errorf("status %s: a packet sent to the error port is not lost", r.Report.Status)
	}
}
