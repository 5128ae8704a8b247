package runtime

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// benchChain runs StaticSource -> BurstNode(b.N) -> Identity -> sink once
// and reports packets/s: the whole-binary benchmark's shape without process
// start-up.
func benchChain(b *testing.B, sink string, opts Options) {
	src := fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{kind: demo, source_id: bench, payload: {message: hello, value: 1}}]}}
  - {id: burst, plugin: "schnitzel_stream.nodes.dev:BurstNode", config: {count: %d}}
  - {id: id, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:%s"}
edges:
  - {from: src, to: burst}
  - {from: burst, to: id}
  - {from: id, to: out}
`, b.N, sink)
	p := plan(b, src)
	b.ReportAllocs()
	b.ResetTimer()
	x, err := New(p, opts)
	if err != nil {
		b.Fatal(err)
	}
	if r := x.Run(context.Background()); r.Err != nil {
		b.Fatal(r.Err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkChain uses Identity as a discarding sink, at several hand-off
// batch sizes.
func BenchmarkChain(b *testing.B) {
	for _, batch := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchChain(b, "Identity", Options{BatchMax: batch})
		})
	}
}

// BenchmarkChainPrint uses PrintSink (to io.Discard): JSON encoding of
// every packet.
func BenchmarkChainPrint(b *testing.B) {
	benchChain(b, "PrintSink", Options{Stdout: io.Discard})
}
