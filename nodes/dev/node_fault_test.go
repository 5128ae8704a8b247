package dev_test

import (
	"context"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const faultGraph = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 10}}
  - {id: f, plugin: "schnitzel_stream.nodes.dev:FaultNode", config: {after: 3, mode: MODE}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: src, to: f}
  - {from: f, to: out}
`

// TestFaultNode: after passes that many packets, then the node fails the
// run (a panic is recovered by the runtime, an error is returned).
func TestFaultNode(t *testing.T) {
	reg := plugin.NewRegistry()
	dev.Register(reg)
	for _, mode := range []string{"panic", "error"} {
		t.Run(mode, func(t *testing.T) {
			r, err := plugintest.TryRunGraph(context.Background(), strings.Replace(faultGraph, "MODE", mode, 1), reg)
			if err == nil || r.Report == nil || r.Report.Error == nil || r.Report.Error.Node != "f" {
				t.Fatalf("err %v report %+v: want node f failed", err, r.Report)
			}
			if !strings.Contains(r.Report.Error.Message, "deliberate "+mode) {
				t.Errorf("message %q", r.Report.Error.Message)
			}
			if n := strings.Count(r.Stdout, "\n"); n != 3 {
				t.Errorf("sink printed %d packets, want 3 before the fault", n)
			}
		})
	}
	_, err := plugintest.TryRunGraph(context.Background(), strings.Replace(faultGraph, "MODE", "explode", 1), reg)
	if err == nil || !strings.Contains(err.Error(), "mode") {
		t.Errorf("mode explode: %v", err)
	}
}
