package execnodes

import (
	"context"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// BenchmarkRoundTrip is the per-packet cost of a plugin: encode, write,
// the plugin's work, read, decode, one packet at a time. The payload is
// upstream's bench packet ({text, value}).
//
//	go test -run XXX -bench RoundTrip -benchtime 20000x ./nodes/exec
func BenchmarkRoundTrip(b *testing.B) {
	py := pythonOrSkip(b)
	b.Run("protocol=python-direct", func(b *testing.B) {
		n := plugintest.Build(b, registry(), NodeName, "node", cfgMap(
			"command", list(py, abs(b, "../../examples/plugins/python/upper.py")), "config", cfgMap("field", "text")))
		bench(b, n)
	})
	b.Run("protocol=python-shim-upstream-class", func(b *testing.B) {
		b.Setenv("ALLOWED_PLUGIN_PREFIXES", "mynodes")
		e, err := pythonFallback("mynodes:Upper", "../../examples/plugins/upstream")
		if err != nil {
			b.Fatal(err)
		}
		n, err := e.Build(cfgMap(), plugin.Env{NodeID: "n", GraphDir: "../../examples/plugins/upstream"})
		if err != nil {
			b.Fatal(err)
		}
		bench(b, n)
	})
}

func bench(b *testing.B, n any) {
	plugintest.Start(b, n)
	defer plugintest.Close(b, n)
	p := packet.New("demo", "bench", cfgMap("text", "hello", "value", int64(1)), "", nil)
	pr := n.(plugin.Processor)
	c := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pr.Process(ctx, p, c); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if c.n != b.N {
		b.Fatalf("%d packets out of %d", c.n, b.N)
	}
}

type discard struct{ n int }

func (d *discard) Emit(*packet.Packet) error             { d.n++; return nil }
func (d *discard) EmitPort(string, *packet.Packet) error { d.n++; return nil }
