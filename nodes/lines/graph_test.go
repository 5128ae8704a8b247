package lines_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/nodes/lines"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// TestGraphStdinToStdout runs StdinSource → StdoutSink through the real
// loader, validator and runtime, with stdin handed in by engine.Options.
func TestGraphStdinToStdout(t *testing.T) {
	reg := plugin.NewRegistry()
	lines.Register(reg)
	const g = `version: 2
nodes:
  - {id: in, kind: source, plugin: "schnitzel_stream.nodes.lines:StdinSource", config: {format: auto}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.lines:StdoutSink", config: {payload_only: true}}
edges:
  - {from: in, to: out}
`
	var out bytes.Buffer
	opts := engine.Options{Registry: reg, Stdout: &out, Stdin: strings.NewReader("{\"a\":1}\nplain\r\n[2]\n")}
	plan, _, err := engine.Load("g.yaml", []byte(g), opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := engine.Execute(context.Background(), plan, "g.yaml", opts)
	if err != nil || rep.Status != "ok" {
		t.Fatalf("status %v err %v", rep, err)
	}
	if want := "{\"a\":1}\n{\"line\":\"plain\"}\n[2]\n"; out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}
}
