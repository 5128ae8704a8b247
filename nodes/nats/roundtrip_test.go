package natsnodes_test

import (
	"slices"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func publishGraph(url string, n int) string {
	return yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: 0, count: %d, source_id: cam01}
  - id: tap
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "IN ", forward: true}
  - id: js
    kind: sink
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config:
      url: %s
      subject: "events.{source_id}.{kind}"
      stream: EVENTS
      create_stream: true
      stream_subjects: ["events.>"]
edges:
  - {from: src, to: tap}
  - {from: tap, to: js}
`, n, url)
}

func consumeGraph(url, durable string) string {
	return yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.nats:JetStreamSource
    config:
      url: %s
      stream: EVENTS
      durable: %s
      follow: false
      idle_wait_sec: 0.2
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "OUT "}
edges:
  - {from: src, to: out}
`, url, durable)
}

func TestJetStreamRoundTrip(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	reg := registry()
	pub := plugintest.RunGraph(t, publishGraph(srv.URL(), 50), reg)
	in := printedIDs(t, pub.Stdout, "IN ")
	if len(in) != 50 {
		t.Fatalf("published %d packets, want 50", len(in))
	}
	if got := metric(t, pub.Report.Metrics, "node.js.published_total"); got != 50 {
		t.Errorf("published_total = %d, want 50", got)
	}
	_, js := natstest.Client(t, srv.URL())
	if n := streamMsgs(t, js, "EVENTS"); n != 50 {
		t.Errorf("stream holds %d messages, want 50", n)
	}
	sub := plugintest.RunGraph(t, consumeGraph(srv.URL(), "reader"), reg)
	out := printedIDs(t, sub.Stdout, "OUT ")
	if !slices.Equal(in, out) {
		t.Errorf("consumed ids differ from published ones:\n in %v\nout %v", in, out)
	}
	if got := metric(t, sub.Report.Metrics, "node.src.acked_total"); got != 50 {
		t.Errorf("acked_total = %d, want 50", got)
	}
	// The durable is at the end: a second run reads nothing.
	again := plugintest.RunGraph(t, consumeGraph(srv.URL(), "reader"), reg)
	if got := printedIDs(t, again.Stdout, "OUT "); len(got) != 0 {
		t.Errorf("second run of the same durable read %d packets, want 0", len(got))
	}
}
