package mapping_test

import (
	"context"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// discard is an Emitter that keeps nothing.
type discard struct{ n int }

func (d *discard) Emit(*packet.Packet) error             { d.n++; return nil }
func (d *discard) EmitPort(string, *packet.Packet) error { d.n++; return nil }

// benchSet is the 3-field mapping of configs/bench/mapping_filter_v2.yaml.
func benchSet() *packet.Map {
	return packet.MapOf(
		"payload.double", "payload.value * 2",
		"payload.upper", "upper(payload.message)",
		"payload.seq_mod", "meta.burst_seq % 10",
	)
}

func benchPackets(n int) []*packet.Packet {
	ps := make([]*packet.Packet, n)
	for i := range ps {
		ps[i] = packet.New("demo", "bench", packet.MapOf("message", "hello", "value", int64(1)), "2026-02-14T00:00:00+00:00",
			packet.MapOf("burst_seq", int64(i)))
	}
	return ps
}

// BenchmarkMapping is one packet through Mapping (3 fields) and Filter.
func BenchmarkMapping(b *testing.B) {
	m := plugintest.Build(b, reg(), mod+"Mapping", "node", packet.MapOf("set", benchSet())).(plugin.Processor)
	f := plugintest.Build(b, reg(), mod+"Filter", "node", packet.MapOf("condition", "payload.seq_mod < 5")).(plugin.Processor)
	ps := benchPackets(1024)
	out := &discard{}
	ctx := context.Background()
	mid := &chain{ctx: ctx, next: f, out: out}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.Process(ctx, ps[i%len(ps)], mid); err != nil {
			b.Fatal(err)
		}
	}
	if k := float64(out.n) / float64(b.N); k < 0.45 || k > 0.55 {
		b.Fatalf("the filter kept %d of %d", out.n, b.N)
	}
}

// chain hands what it is given to the next processor.
type chain struct {
	ctx  context.Context
	next plugin.Processor
	out  plugin.Emitter
}

func (c *chain) Emit(p *packet.Packet) error           { return c.next.Process(c.ctx, p, c.out) }
func (c *chain) EmitPort(string, *packet.Packet) error { panic("no ports") }

// BenchmarkMappingOnly is Mapping alone, per packet.
func BenchmarkMappingOnly(b *testing.B) {
	m := plugintest.Build(b, reg(), mod+"Mapping", "node", packet.MapOf("set", benchSet())).(plugin.Processor)
	ps := benchPackets(1024)
	out := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.Process(ctx, ps[i%len(ps)], out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile is what building a node costs per expression (it is
// compiled at validation and once more in New, never per packet).
func BenchmarkCompile(b *testing.B) {
	e, _ := reg().Lookup(mod + "Mapping")
	cfg := packet.MapOf("set", benchSet())
	b.ReportAllocs()
	for b.Loop() {
		if _, _, errs := e.Decode(cfg); len(errs) > 0 {
			b.Fatal(errs[0])
		}
	}
}

// BenchmarkBatch is one packet into a Batch of 100, keyed by source_id.
func BenchmarkBatch(b *testing.B) {
	n := plugintest.Build(b, reg(), mod+"Batch", "node", packet.MapOf("count", int64(100), "key", "source_id"))
	defer plugintest.Close(b, n)
	p := n.(plugin.Processor)
	ps := benchPackets(1024)
	out := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := p.Process(ctx, ps[i%len(ps)], out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkWindow is one packet into an event-time tumbling Window of 1 s
// with avg and max aggregates, 10 keys, ts advancing 1 ms per packet.
func BenchmarkWindow(b *testing.B) {
	n := plugintest.Build(b, reg(), mod+"Window", "node", packet.MapOf("size_sec", 1.0, "key", "meta.burst_seq % 10",
		"aggregates", packet.MapOf("avg", packet.MapOf("op", "avg", "expr", "payload.value"), "max", packet.MapOf("op", "max", "expr", "payload.value"))))
	defer plugintest.Close(b, n)
	p := n.(plugin.Processor)
	ps := benchPackets(10000)
	t0 := time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)
	for i, q := range ps {
		q.TS = packet.FormatTS(t0.Add(time.Duration(i) * time.Millisecond))
	}
	out := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q := ps[i%len(ps)].Copy()
		q.TS = packet.FormatTS(t0.Add(time.Duration(i) * time.Millisecond))
		if err := p.Process(ctx, q, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
