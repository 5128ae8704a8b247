package runtime

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// TestTapSeesEveryPacket: a tap on a processor sees what it emits, a tap on
// a sink what it consumes, a removed tap nothing, and a port filter only
// its port.
func TestTapSeesEveryPacket(t *testing.T) {
	const n = 5000
	x, err := New(plan(t, fmt.Sprintf(chain, n)), Options{InboxMax: 64, BatchMax: 16})
	if err != nil {
		t.Fatal(err)
	}
	var burst, sink, removed, otherPort atomic.Int64
	var lastSeq atomic.Int64
	lastSeq.Store(-1)
	ordered := atomic.Bool{}
	ordered.Store(true)
	if _, err := x.Tap("burst", "", func(p *packet.Packet) {
		burst.Add(1)
		v, _ := p.Meta.Get("burst_seq")
		if seq, _ := v.(int64); seq != lastSeq.Load()+1 {
			ordered.Store(false)
		} else {
			lastSeq.Store(seq)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Tap("out", "", func(*packet.Packet) { sink.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Tap("id", "no_such_port", func(*packet.Packet) { otherPort.Add(1) }); err != nil {
		t.Fatal(err)
	}
	remove, err := x.Tap("id", "", func(*packet.Packet) { removed.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	remove()
	remove() // twice is harmless
	if _, err := x.Tap("nope", "", func(*packet.Packet) {}); err == nil {
		t.Error("tap on an unknown node accepted")
	}
	if r := x.Run(context.Background()); r.Err != nil {
		t.Fatal(r.Err)
	}
	if burst.Load() != n || sink.Load() != n || !ordered.Load() {
		t.Errorf("burst tap saw %d (ordered %v), sink tap %d; want %d each", burst.Load(), ordered.Load(), sink.Load(), n)
	}
	if removed.Load() != 0 || otherPort.Load() != 0 {
		t.Errorf("removed tap saw %d, other-port tap %d; want 0", removed.Load(), otherPort.Load())
	}
	if got := len(sinkFor(t, "out").packets()); got != n {
		t.Errorf("sink got %d packets with taps, want %d", got, n)
	}
}

// TestStalledTapNeverSlowsTheGraph: a tap whose reader never reads (a full
// channel, non-blocking send) loses packets, the graph none. Counted, not
// timed: every packet reaches the sink and every one the tap saw is either
// delivered or dropped.
func TestStalledTapNeverSlowsTheGraph(t *testing.T) {
	const n = 20000
	x, err := New(plan(t, fmt.Sprintf(chain, n)), Options{InboxMax: 64, BatchMax: 16})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *packet.Packet, 8) // nobody reads it
	var dropped atomic.Int64
	if _, err := x.Tap("id", "", func(p *packet.Packet) {
		select {
		case ch <- p:
		default:
			dropped.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result, 1)
	go func() { done <- x.Run(context.Background()) }()
	r := <-done // a blocking tap would hang here; the test's own timeout catches it
	if r.Err != nil || r.Degraded {
		t.Fatalf("err %v degraded %v", r.Err, r.Degraded)
	}
	if got := len(sinkFor(t, "out").packets()); got != n {
		t.Fatalf("sink got %d packets, want %d", got, n)
	}
	if len(ch) != cap(ch) || int64(len(ch))+dropped.Load() != n {
		t.Errorf("tap delivered %d and dropped %d; want %d full and the rest (%d) dropped", len(ch), dropped.Load(), cap(ch), n-cap(ch))
	}
}
