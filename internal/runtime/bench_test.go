package runtime

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkChain measures packets/s through StaticSource -> BurstNode(N) ->
// Identity -> Identity (discarding sink): the whole-binary benchmark's shape
// without process start-up.
func BenchmarkChain(b *testing.B) {
	for _, batch := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			t := &testing.T{}
			src := fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: {message: hello, value: 1}}]}}
  - {id: burst, plugin: "schnitzel_stream.nodes.dev:BurstNode", config: {count: %d}}
  - {id: id, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:Identity"}
edges:
  - {from: src, to: burst}
  - {from: burst, to: id}
  - {from: id, to: out}
`, b.N)
			p := plan(t, src)
			b.ReportAllocs()
			b.ResetTimer()
			x, err := New(p, Options{BatchMax: batch})
			if err != nil {
				b.Fatal(err)
			}
			r := x.Run(context.Background())
			if r.Err != nil {
				b.Fatal(r.Err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
		})
	}
}

// BenchmarkChainPrint is BenchmarkChain with PrintSink (to io.Discard) as
// the sink: JSON encoding of every packet.
func BenchmarkChainPrint(b *testing.B) {
	t := &testing.T{}
	src := fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{kind: demo, source_id: bench, payload: {message: hello, value: 1}}]}}
  - {id: burst, plugin: "schnitzel_stream.nodes.dev:BurstNode", config: {count: %d}}
  - {id: id, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: src, to: burst}
  - {from: burst, to: id}
  - {from: id, to: out}
`, b.N)
	p := plan(t, src)
	b.ReportAllocs()
	b.ResetTimer()
	x, err := New(p, Options{Stdout: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	if r := x.Run(context.Background()); r.Err != nil {
		b.Fatal(r.Err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
