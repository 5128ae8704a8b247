package natsnodes_test

import (
	"context"
	"fmt"
	"strings"
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
	_, js := natstest.Client(b, srv.URL())
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

// BenchmarkPublishReplicas: plain nats.go async publishes of 600-byte
// events (the size of a protocol v0.2 event as JSON) with a window of 256
// pending PubAcks, to an R1 stream on one server and to an R1 and an R3
// stream on a 3-server cluster: the inputs of docs/scale.md.
func BenchmarkPublishReplicas(b *testing.B) {
	body := make([]byte, 600)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	publish := func(b *testing.B, url string, replicas int) {
		_, js := natstest.Client(b, url)
		ctx := context.Background()
		name := fmt.Sprintf("P%d_%d", replicas, b.N)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Replicas: replicas}); err != nil {
			b.Fatal(err)
		}
		subj := name + ".x"
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := js.PublishAsync(subj, body); err != nil {
				b.Fatal(err)
			}
			if i%256 == 255 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	}
	b.Run("single-R1", func(b *testing.B) {
		publish(b, natstest.Start(b, natstest.Options{}).URL(), 1)
	})
	_, urls := startCluster(b, 3)
	url := strings.Join(urls, ",")
	b.Run("cluster-R1", func(b *testing.B) { publish(b, url, 1) })
	b.Run("cluster-R3", func(b *testing.B) { publish(b, url, 3) })
}
