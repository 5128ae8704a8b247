package ionodes

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// BenchmarkJSONLSink measures lines per second by fsync policy and batch
// size: the batch policy is where group commit pays.
func BenchmarkJSONLSink(b *testing.B) {
	for _, pol := range []string{"never", "batch", "always"} {
		for _, size := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("fsync=%s/batch=%d", pol, size), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "b.jsonl")
				s := buildJSONL(b, "path", path, "fsync", pol)
				defer plugintest.Close(b, s)
				batch := make([]*packet.Packet, size)
				for i := range batch {
					batch[i] = fixedPacket(i)
				}
				line, _ := appendRecord(nil, batch[0], true, packet.JSONOptions{})
				b.SetBytes(int64(len(line)+1) * int64(size))
				b.ReportAllocs()
				c := &plugintest.Collector{}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.ProcessBatch(context.Background(), batch, c); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "lines/s")
			})
		}
	}
}

// BenchmarkHTTPSink measures sequential posts per second to a loopback
// server over the sink's keep-alive connection, side by side with a new
// connection per post (what a client without reuse pays).
func BenchmarkHTTPSink(b *testing.B) {
	for _, keepAlive := range []bool{true, false} {
		b.Run(fmt.Sprintf("keepalive=%v", keepAlive), func(b *testing.B) {
			srv := newReceiver(b, always(http.StatusOK))
			n := plugintest.Build(b, testRegistry(), httpSinkName, "sink", packet.MapOf("url", srv.srv.URL, "max_in_flight", int64(1)))
			plugintest.Start(b, n)
			defer plugintest.Close(b, n)
			s := n.(*httpSink)
			s.transport.DisableKeepAlives = !keepAlive
			p := fixedPacket(1)
			c := &plugintest.Collector{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := deliver(s, c, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
			b.ReportMetric(float64(srv.newConns.Load())/float64(b.N), "conns/post")
		})
	}
}

// BenchmarkHTTPSinkInFlight measures packets per second to an instant
// loopback receiver by max_in_flight and batch size, input batches of 256
// as the runtime hands them over.
func BenchmarkHTTPSinkInFlight(b *testing.B) {
	for _, c := range []struct{ inFlight, batch int }{{1, 1}, {64, 1}, {64, 100}} {
		b.Run(fmt.Sprintf("in_flight=%d/batch=%d", c.inFlight, c.batch), func(b *testing.B) {
			srv := newReceiver(b, always(http.StatusOK))
			srv.respBody = `{"ok":true}`
			s := startHTTPSink(b, "url", srv.srv.URL, "max_in_flight", int64(c.inFlight), "batch_max_count", int64(c.batch), "forward", true)
			in := make([]*packet.Packet, 256)
			for i := range in {
				in[i] = fixedPacket(i)
			}
			col := &discardEmitter{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.ProcessBatch(context.Background(), in, col); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(context.Background(), col); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "packets/s")
		})
	}
}

type discardEmitter struct{ n atomic.Int64 }

func (d *discardEmitter) Emit(*packet.Packet) error             { d.n.Add(1); return nil }
func (d *discardEmitter) EmitPort(string, *packet.Packet) error { d.n.Add(1); return nil }

// BenchmarkEncodeRecord measures the sinks' encoder alone: a packet
// envelope by ensure_ascii and indent.
func BenchmarkEncodeRecord(b *testing.B) {
	for _, c := range []struct {
		name   string
		ascii  bool
		indent int
	}{{"utf8/line", false, -1}, {"ascii/line", true, -1}, {"utf8/indent2", false, 2}} {
		b.Run(c.name, func(b *testing.B) {
			p := fixedPacket(7)
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var err error
				if buf, err = appendRecord(buf[:0], p, true, packet.JSONOptions{EnsureASCII: c.ascii, Pretty: c.indent >= 0, Indent: c.indent}); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
