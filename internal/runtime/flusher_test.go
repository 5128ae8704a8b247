package runtime

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// asyncNode finishes each packet on a goroutine of its own, as an HTTP
// sink with requests in flight does: packets whose payload is 1 wait for
// gate. Flush waits for them all.
type asyncNode struct {
	gate chan struct{}
	wg   sync.WaitGroup
}

func (a *asyncNode) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	for _, p := range batch {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if p.Payload == int64(1) {
				<-a.gate
			}
			_ = out.Emit(p)
		}()
	}
	return nil
}

func (a *asyncNode) Flush(context.Context, plugin.Emitter) error {
	a.wg.Wait()
	return nil
}

// TestFlusherEmitsFromItsGoroutinesAtOnceAndIsFlushedAtEnd: packets a
// plugin.Flusher emits from its own goroutines reach the next node at once
// (not at the end of an input batch), and the run does not end before
// Flush returned.
func TestFlusherEmitsFromItsGoroutinesAtOnceAndIsFlushedAtEnd(t *testing.T) {
	a := &asyncNode{gate: make(chan struct{})}
	r := registry(t)
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:Async", Role: plugin.RoleNode,
		New: func(dev.Empty, plugin.Env) (any, error) { return a, nil },
	})
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 0}, {payload: 1}, {payload: 2}]}}
  - {id: async, plugin: "schnitzel_stream.test:Async"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: async}
  - {from: async, to: out}
`
	g, d := graph.Load("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if d.HasErrors() {
		t.Fatal(d)
	}
	p, vd := graph.Validate(g, r, plugin.Policy{AllowAll: true})
	if vd.HasErrors() {
		t.Fatal(vd)
	}
	x, err := New(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result, 1)
	go func() { done <- x.Run(context.Background()) }()
	if !poll.Wait(10*time.Second, func() bool { return len(sinkFor(t, "out").packets()) >= 2 }) {
		x.Abort()
		t.Fatalf("sink got %d packets while one was held, want the 2 finished ones at once", len(sinkFor(t, "out").packets()))
	}
	select {
	case <-done:
		t.Fatal("the run ended before Flush returned")
	default:
	}
	close(a.gate)
	res := <-done
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if n := len(sinkFor(t, "out").packets()); n != 3 {
		t.Errorf("sink got %d packets, want 3", n)
	}
	if st := metric(res, "async"); st.Produced != 3 {
		t.Errorf("async produced %d, want 3", st.Produced)
	}
}

// asyncCountdown is countdown finishing each packet on its own goroutine.
type asyncCountdown struct{ wg sync.WaitGroup }

func (a *asyncCountdown) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	for _, p := range batch {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			_ = countdown{}.Process(context.Background(), p, out)
		}()
	}
	return nil
}

func (a *asyncCountdown) Flush(context.Context, plugin.Emitter) error {
	a.wg.Wait()
	return nil
}

// TestFlusherInCycle: in a cyclic graph the runtime flushes a Flusher
// after every batch, so quiescence is not declared while its packets are
// in flight and every packet leaves the loop.
func TestFlusherInCycle(t *testing.T) {
	r := registry(t)
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:AsyncCountdown", Role: plugin.RoleNode, OutPorts: []string{"loop", "done"},
		New: func(dev.Empty, plugin.Env) (any, error) { return &asyncCountdown{}, nil },
	})
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 3}, {payload: 0}, {payload: 5}]}}
  - {id: loop, kind: delay, plugin: "schnitzel_stream.test:AsyncCountdown"}
  - {id: finished, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: loop}
  - {from: loop, to: loop, from_port: loop}
  - {from: loop, to: finished, from_port: done}
`
	g, d := graph.Load("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if d.HasErrors() {
		t.Fatal(d)
	}
	p, vd := graph.Validate(g, r, plugin.Policy{AllowAll: true})
	if vd.HasErrors() {
		t.Fatal(vd)
	}
	x, err := New(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result, 1)
	go func() { done <- x.Run(context.Background()) }()
	var res *Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		x.Abort()
		t.Fatal("run did not finish")
	}
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if n := len(sinkFor(t, "finished").packets()); n != 3 {
		t.Errorf("finished got %d packets, want 3", n)
	}
	if m := metric(res, "loop"); m.Consumed != 4+1+6 {
		t.Errorf("loop consumed %d, want 11", m.Consumed)
	}
}
