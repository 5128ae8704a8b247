package dev

import (
	"bytes"
	"context"
	"io"
	"math"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// The line is what upstream's PrintSink prints for the same packet:
// json.dumps(data, default=str) with the prefix in front.
func TestPrintSinkLine(t *testing.T) {
	var out bytes.Buffer
	s := newPrintSink(PrintConfig{Prefix: "> "}, &out)
	p := &packet.Packet{ID: "id1", TS: "2026-01-01T00:00:00+00:00", Kind: "demo", SourceID: "s\u00e9",
		Payload: packet.MapOf("message", "h\u00e9llo", "value", int64(1), "r", 0.5, "nan", math.NaN(), "l", []any{true, nil}),
		Meta:    packet.MapOf("burst_seq", int64(3))}
	c := &plugintest.Collector{}
	if err := s.ProcessBatch(context.Background(), []*packet.Packet{p, p}, c); err != nil {
		t.Fatal(err)
	}
	line := `> {"packet_id": "id1", "ts": "2026-01-01T00:00:00+00:00", "kind": "demo", "source_id": "s\u00e9", ` +
		`"payload": {"message": "h\u00e9llo", "value": 1, "r": 0.5, "nan": NaN, "l": [true, null]}, "meta": {"burst_seq": 3}}` + "\n"
	if got := out.String(); got != line+line {
		t.Errorf("got  %q\nwant %q", got, line+line)
	}
	if len(c.Packets()) != 0 {
		t.Error("forwarded without forward: true")
	}
}

// BenchmarkPrintSink is the core chain's sink: batches of BurstNode's
// packets (a small payload, meta burst_seq) to a discarding writer.
func BenchmarkPrintSink(b *testing.B) {
	s := newPrintSink(PrintConfig{}, io.Discard)
	src := &packet.Packet{ID: packet.NewID(), TS: "2026-11-25T20:43:58.487035+00:00", Kind: "demo", SourceID: "bench",
		Payload: packet.MapOf("message", "hello", "value", int64(1))}
	batch := make([]*packet.Packet, 256)
	for i := range batch {
		batch[i] = packet.DeriveSeq(src, "burst_seq", int64(i)*1000)
	}
	c := &plugintest.Collector{}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ProcessBatch(context.Background(), batch, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "packets/s")
}
