package natsnodes_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// Core NATS: two sources in one queue group share what a NatsSink
// publishes (each message to one of them); a third outside the group gets
// every message; packets arrive as they were sent.
func TestCoreQueueGroup(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	reg := registry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cols := make([]*plugintest.Collector, 3)
	var wg sync.WaitGroup
	for i, q := range []string{"g", "g", ""} {
		n := plugintest.Build(t, reg, "schnitzel_stream.nodes.nats:NatsSource", "source", packet.MapOf("url", srv.URL(), "subject", "core.>", "queue", q))
		plugintest.Start(t, n)
		t.Cleanup(func() { plugintest.Close(t, n) })
		cols[i] = &plugintest.Collector{}
		wg.Go(func() { _ = n.(plugin.Source).Run(ctx, cols[i]) })
	}
	poll.Until(t, 10*time.Second, "three subscriptions", func() bool { return srv.NumSubscriptions() >= 3 })
	pub := plugintest.RunGraph(t, yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: 0, count: 200, source_id: cam01}
  - id: tap
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "IN ", forward: true}
  - id: pub
    kind: sink
    plugin: schnitzel_stream.nodes.nats:NatsSink
    config: {url: %s, subject: "core.{source_id}"}
edges:
  - {from: src, to: tap}
  - {from: tap, to: pub}
`, srv.URL()), reg)
	in := printedIDs(t, pub.Stdout, "IN ")
	poll.Until(t, 10*time.Second, "every message to the group and to the lone subscriber", func() bool {
		return len(cols[0].Packets())+len(cols[1].Packets()) == len(in) && len(cols[2].Packets()) == len(in)
	})
	cancel()
	wg.Wait()
	ids := func(ps []*packet.Packet) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	if !slices.Equal(ids(cols[2].Packets()), in) {
		t.Errorf("the lone subscriber's packets differ from the published ones")
	}
	group := append(ids(cols[0].Packets()), ids(cols[1].Packets())...)
	slices.Sort(group)
	want := slices.Clone(in)
	slices.Sort(want)
	if !slices.Equal(group, want) {
		t.Errorf("the group's union differs from the published packets")
	}
	if len(cols[0].Packets()) == 0 || len(cols[1].Packets()) == 0 {
		t.Errorf("group shares %d/%d: both should have some", len(cols[0].Packets()), len(cols[1].Packets()))
	}
	if p := cols[2].Packets()[0]; p.Kind != "tick" || p.SourceID != "cam01" {
		t.Errorf("packet came back as kind %q source %q", p.Kind, p.SourceID)
	}
}

// A server that is not there at start: Start succeeds, and the batch is
// published once a server comes up on the address.
func TestJetStreamSinkWaitsForServer(t *testing.T) {
	port, err := natstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	n := plugintest.Build(t, registry(), "schnitzel_stream.nodes.nats:JetStreamSink", "sink", packet.MapOf(
		"url", yamlf("nats://127.0.0.1:%d", port), "subject", "late.{source_id}", "stream", "LATE", "create_stream", true,
		"reconnect_wait_sec", 0.1, "timeout_sec", 1.0, "retry_backoff_sec", 0.05))
	plugintest.Start(t, n) // no server yet: must not fail
	t.Cleanup(func() { plugintest.Close(t, n) })
	var in []*packet.Packet
	for i := range 20 {
		in = append(in, packet.New("event", "cam01", packet.MapOf("i", int64(i)), "", nil))
	}
	done := make(chan error, 1)
	col := &plugintest.Collector{}
	go func() { done <- plugintest.ProcessInto(n, col, in...) }()
	srv := natstest.Start(t, natstest.Options{Port: port})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the sink did not finish once the server was up")
	}
	if len(col.Packets()) != 20 {
		t.Errorf("emitted %d after PubAck, want 20", len(col.Packets()))
	}
	_, js := natstest.Client(t, srv.URL())
	if got := streamMsgs(t, js, "LATE"); got != 20 {
		t.Errorf("stream holds %d, want 20", got)
	}
}
