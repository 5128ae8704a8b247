// Package plugintest drives nodes directly through the plugin API, without
// a graph or the runtime, for node unit tests.
package plugintest

import (
	"context"
	"sync"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Collector is an Emitter that keeps what it is given, by port ("" is the
// default port). Max > 0 makes Emit return plugin.ErrStop once Max packets
// were taken, as the runtime does for --max-events.
type Collector struct {
	mu     sync.Mutex
	ByPort map[string][]*packet.Packet
	Max    int
	n      int
}

// Emit implements plugin.Emitter.
func (c *Collector) Emit(p *packet.Packet) error { return c.EmitPort("", p) }

// EmitPort implements plugin.Emitter.
func (c *Collector) EmitPort(port string, p *packet.Packet) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Max > 0 && c.n >= c.Max {
		return plugin.ErrStop
	}
	if c.ByPort == nil {
		c.ByPort = map[string][]*packet.Packet{}
	}
	c.ByPort[port] = append(c.ByPort[port], p)
	c.n++
	return nil
}

// Packets returns what was emitted on the default port.
func (c *Collector) Packets() []*packet.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*packet.Packet(nil), c.ByPort[""]...)
}

// Build decodes cfg for the named plugin and constructs the node, failing
// the test on any decode or constructor error. kind is the graph kind.
func Build(t testing.TB, reg *plugin.Registry, name, kind string, cfg *packet.Map) any {
	t.Helper()
	n, err := TryBuild(reg, name, kind, cfg)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return n
}

// TryBuild is Build returning the error instead.
func TryBuild(reg *plugin.Registry, name, kind string, cfg *packet.Map) (any, error) {
	e, ok := reg.Lookup(name)
	if !ok {
		return nil, &plugin.FieldError{Msg: "plugin not registered: " + name}
	}
	if cfg == nil {
		cfg = packet.NewMap(0)
	}
	dec, _, errs := e.Decode(cfg)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return e.Build(dec, plugin.Env{NodeID: "n", Kind: kind, Plugin: name})
}

// Start calls Start if the node has it.
func Start(t testing.TB, n any) {
	t.Helper()
	if s, ok := n.(plugin.Starter); ok {
		if err := s.Start(context.Background()); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
}

// Close calls Close (twice, to check it is idempotent) if the node has it.
func Close(t testing.TB, n any) {
	t.Helper()
	if c, ok := n.(plugin.Closer); ok {
		for i := 0; i < 2; i++ {
			if err := c.Close(context.Background()); err != nil {
				t.Fatalf("close #%d: %v", i+1, err)
			}
		}
	}
}

// Process feeds packets through a Processor (or BatchProcessor) and returns
// what it emitted on the default port.
func Process(t testing.TB, n any, in ...*packet.Packet) []*packet.Packet {
	t.Helper()
	c := &Collector{}
	if err := ProcessInto(n, c, in...); err != nil {
		t.Fatalf("process: %v", err)
	}
	return c.Packets()
}

// ProcessInto is Process with a caller's collector, returning the first
// error. A plugin.Flusher is flushed after the last packet, as the runtime
// does when the input ends.
func ProcessInto(n any, c *Collector, in ...*packet.Packet) error {
	ctx := context.Background()
	if err := processAll(ctx, n, c, in); err != nil {
		return err
	}
	if f, ok := n.(plugin.Flusher); ok {
		return f.Flush(ctx, c)
	}
	return nil
}

func processAll(ctx context.Context, n any, c plugin.Emitter, in []*packet.Packet) error {
	if bp, ok := n.(plugin.BatchProcessor); ok {
		return bp.ProcessBatch(ctx, in, c)
	}
	p := n.(plugin.Processor)
	for _, pk := range in {
		if err := p.Process(ctx, pk, c); err != nil {
			return err
		}
	}
	return nil
}

// RunSource runs a Source to its end (or until max packets, when max > 0)
// and returns what it emitted.
func RunSource(t testing.TB, n any, max int) []*packet.Packet {
	t.Helper()
	c := &Collector{Max: max}
	if err := n.(plugin.Source).Run(context.Background(), c); err != nil && err != plugin.ErrStop {
		t.Fatalf("run: %v", err)
	}
	return c.Packets()
}

// Lost sums n's metrics that the spec of plugin name declares as Loss, as
// the runtime does to decide whether a run is degraded.
func Lost(t testing.TB, reg *plugin.Registry, name string, n any) int64 {
	t.Helper()
	e, ok := reg.Lookup(name)
	if !ok {
		t.Fatalf("plugin not registered: %s", name)
	}
	m, ok := n.(plugin.Metrics)
	if !ok {
		t.Fatalf("%s: %T has no Metrics", name, n)
	}
	var lost int64
	for _, v := range m.Metrics() {
		if ms, ok := e.Metric(v.Name); ok && ms.Loss {
			lost += v.Value
		}
	}
	return lost
}
