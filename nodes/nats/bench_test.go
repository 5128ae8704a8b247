package natsnodes_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

type discard struct{}

func (discard) Emit(*packet.Packet) error             { return nil }
func (discard) EmitPort(string, *packet.Packet) error { return nil }

// BenchmarkJetStreamSource: b.N messages through the source alone (decode,
// emit, ack), for profiling; scripts/bench-nats measures whole graphs.
func BenchmarkJetStreamSource(b *testing.B) {
	srv := natstest.Start(b, natstest.Options{})
	_, js := client(b, srv.URL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"b.>"}}); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		p := packet.New("tick", "bench", packet.MapOf("seq", int64(i)), "", nil)
		body, _ := packet.AppendPacketJSON(nil, p, packet.JSONOptions{Style: packet.Compact})
		if _, err := js.PublishAsync("b.x", body); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	n := plugintest.Build(b, registry(), "schnitzel_stream.nodes.nats:JetStreamSource", "source", packet.MapOf(
		"url", srv.URL(), "stream", "B", "durable", "b", "follow", false, "idle_wait_sec", 0.05, "max_ack_pending", int64(10000)))
	plugintest.Start(b, n)
	defer plugintest.Close(b, n)
	b.ResetTimer()
	if err := n.(plugin.Source).Run(ctx, discard{}); err != nil {
		b.Fatal(err)
	}
}
