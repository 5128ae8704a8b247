package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// collector is a test sink that records what reaches it.
type collector struct {
	mu     sync.Mutex
	got    []*packet.Packet
	gate   chan struct{} // when set, Process waits for it to close
	closed atomic.Int32
}

var (
	sinksMu sync.Mutex
	sinks   = map[string]*collector{}
)

func sinkFor(t *testing.T, id string) *collector {
	sinksMu.Lock()
	defer sinksMu.Unlock()
	return sinks[t.Name()+"/"+id]
}

type collectCfg struct {
	Gate bool   `yaml:"gate"`
	Fail string `yaml:"fail"` // error | panic | drop: what to do with packets whose payload equals "bad"
}

type testNode struct {
	c   *collector
	cfg collectCfg
}

func (n *testNode) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	if n.c.gate != nil {
		<-n.c.gate
	}
	if s, _ := p.Payload.(string); s == "bad" {
		switch n.cfg.Fail {
		case "error":
			return errors.New("bad packet")
		case "panic":
			panic("boom")
		case "drop":
			return plugin.DropPacket(errors.New("cannot deliver"))
		}
	}
	n.c.mu.Lock()
	n.c.got = append(n.c.got, p)
	n.c.mu.Unlock()
	return nil
}

func (n *testNode) Close(context.Context) error { n.c.closed.Add(1); return nil }

func (c *collector) packets() []*packet.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*packet.Packet(nil), c.got...)
}

// countdown re-emits a packet on port "loop" with payload-1 while it is
// > 0, and on port "done" when it reaches 0.
type countdown struct{}

func (countdown) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	n := p.Payload.(int64)
	q := p.Copy()
	if n > 0 {
		q.Payload = n - 1
		return out.EmitPort("loop", q)
	}
	return out.EmitPort("done", q)
}

func registry(t testing.TB) *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	plugin.Register(r, plugin.Spec[collectCfg]{
		Name: "schnitzel_stream.test:Collect", Role: plugin.RoleSink,
		New: func(c collectCfg, env plugin.Env) (any, error) {
			col := &collector{}
			if c.Gate {
				col.gate = make(chan struct{})
			}
			sinksMu.Lock()
			sinks[t.Name()+"/"+env.NodeID] = col
			sinksMu.Unlock()
			return &testNode{c: col, cfg: c}, nil
		},
	})
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:Countdown", Role: plugin.RoleNode, OutPorts: []string{"loop", "done"},
		New: func(dev.Empty, plugin.Env) (any, error) { return countdown{}, nil },
	})
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:Hinted", Role: plugin.RoleSource,
		New: func(_ dev.Empty, env plugin.Env) (any, error) {
			h := &hinted{}
			sinksMu.Lock()
			hints[t.Name()+"/"+env.NodeID] = h
			sinksMu.Unlock()
			return h, nil
		},
	})
	plugin.Register(r, plugin.Spec[heavyCfg]{
		Name: "schnitzel_stream.test:Heavy", Role: plugin.RoleSource,
		New: func(c heavyCfg, _ plugin.Env) (any, error) {
			if c.Marked {
				return &markedHeavy{heavy{c}}, nil
			}
			return &heavy{c}, nil
		},
	})
	plugin.Register(r, plugin.Spec[lossyCfg]{
		Name: "schnitzel_stream.test:Lossy", Role: plugin.RoleSink,
		Metrics: []plugin.MetricSpec{
			{Name: "seen_total", Help: "Packets seen."},
			{Name: "lost_total", Help: "Packets lost.", Loss: true},
		},
		New: func(c lossyCfg, _ plugin.Env) (any, error) { return &lossy{c}, nil },
	})
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:Committer", Role: plugin.RoleSink, Commits: true,
		New: func(dev.Empty, plugin.Env) (any, error) { return &lossy{}, nil },
	})
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:EnvSpy", Role: plugin.RoleNode,
		New: func(_ dev.Empty, env plugin.Env) (any, error) {
			envSeen.Store(env.NodeID, env.CommitDownstream)
			return &lossy{}, nil
		},
	})
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:FailBuild", Role: plugin.RoleNode,
		New: func(dev.Empty, plugin.Env) (any, error) { return nil, errors.New("cannot build") },
	})
	return r
}

func plan(t testing.TB, src string) *graph.Plan {
	t.Helper()
	g, d := graph.Load("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if d.HasErrors() {
		t.Fatal(d)
	}
	p, vd := graph.Validate(g, registry(t), plugin.Policy{AllowAll: true})
	if vd.HasErrors() {
		t.Fatal(vd)
	}
	return p
}

func run(t *testing.T, src string, opts Options) (*Result, *Executor) {
	t.Helper()
	x, err := New(plan(t, src), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result, 1)
	go func() { done <- x.Run(context.Background()) }()
	select {
	case r := <-done:
		return r, x
	case <-time.After(30 * time.Second):
		x.Abort()
		t.Fatal("run did not finish")
		return nil, nil
	}
}

func metric(r *Result, id string) NodeStats {
	for _, n := range r.Nodes {
		if n.ID == id {
			return n
		}
	}
	return NodeStats{}
}

const chain = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
  - {id: burst, plugin: "schnitzel_stream.nodes.dev:BurstNode", config: {count: %d}}
  - {id: id, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: burst}
  - {from: burst, to: id}
  - {from: id, to: out}
`

func TestChainDeliversInOrderWithCounts(t *testing.T) {
	const n = 20000
	r, _ := run(t, fmt.Sprintf(chain, n), Options{InboxMax: 64, BatchMax: 16})
	if r.Err != nil || r.Degraded {
		t.Fatalf("err %v degraded %v", r.Err, r.Degraded)
	}
	got := sinkFor(t, "out").packets()
	if len(got) != n {
		t.Fatalf("sink got %d packets, want %d", len(got), n)
	}
	for i, p := range got {
		if v, _ := p.Meta.Get("burst_seq"); v != int64(i) {
			t.Fatalf("packet %d has burst_seq %v: order lost", i, v)
		}
	}
	if m := metric(r, "burst"); m.Consumed != 1 || m.Produced != n {
		t.Errorf("burst counters %+v", m)
	}
	if m := metric(r, "out"); m.Consumed != n || !m.IsSink {
		t.Errorf("sink counters %+v", m)
	}
	if r.SourceEmitted != 1 {
		t.Errorf("source emitted %d", r.SourceEmitted)
	}
	if sinkFor(t, "out").closed.Load() != 1 {
		t.Error("sink not closed exactly once")
	}
}

func TestMaxEventsIsExact(t *testing.T) {
	src := `version: 2
nodes:
  - {id: a, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 0}}
  - {id: b, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 0}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: a, to: out}
  - {from: b, to: out}
`
	for _, max := range []int64{1, 7, 5000} {
		r, _ := run(t, src, Options{MaxEvents: max})
		if got := int64(len(sinkFor(t, "out").packets())); got != max || r.SourceEmitted != max {
			t.Errorf("max %d: sink got %d, source emitted %d", max, got, r.SourceEmitted)
		}
	}
}

func TestOverflowPolicies(t *testing.T) {
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
  - {id: burst, plugin: "schnitzel_stream.nodes.dev:BurstNode", config: {count: 5}}
  - id: out
    kind: sink
    plugin: "schnitzel_stream.test:Collect"
    config: {__runtime__: {inbox_max: 2, inbox_overflow: %s}}
edges:
  - {from: src, to: burst}
  - {from: burst, to: out}
`
	cases := []struct {
		policy string
		keep   []int64
	}{
		{"drop_new", []int64{0, 1}},
		{"drop_oldest", []int64{3, 4}},
	}
	for _, c := range cases {
		r, _ := run(t, fmt.Sprintf(src, c.policy), Options{})
		var seqs []int64
		for _, p := range sinkFor(t, "out").packets() {
			v, _ := p.Meta.Get("burst_seq")
			seqs = append(seqs, v.(int64))
		}
		if fmt.Sprint(seqs) != fmt.Sprint(c.keep) {
			t.Errorf("%s: kept %v, want %v", c.policy, seqs, c.keep)
		}
		if m := metric(r, "out"); m.InboxDropped != 3 || !r.Degraded {
			t.Errorf("%s: dropped %d degraded %v", c.policy, m.InboxDropped, r.Degraded)
		}
	}
	r, _ := run(t, fmt.Sprintf(src, "error"), Options{})
	if r.Err == nil || !strings.Contains(r.Err.Error(), "inbox overflow: node=out max=2 policy=error (src=burst)") {
		t.Errorf("error policy: %v", r.Err)
	}
}

func TestBlockIsLosslessBackpressure(t *testing.T) {
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 3000}}
  - id: out
    kind: sink
    plugin: "schnitzel_stream.test:Collect"
    config: {gate: true, __runtime__: {inbox_max: 4}}
edges:
  - {from: src, to: out}
`
	x, err := New(plan(t, src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result)
	go func() { done <- x.Run(context.Background()) }()
	// The sink is gated: the source must be held back by backpressure.
	poll.Until(t, 5*time.Second, "5 packets emitted", func() bool { return x.Snapshot().SourceEmitted >= 5 })
	time.Sleep(20 * time.Millisecond)
	if e := x.Snapshot().SourceEmitted; e > 2*4+1 { // one batch taken by the sink, one queued, one blocked push
		t.Errorf("source ran ahead of a blocked sink: %d emitted with inbox_max 4", e)
	}
	close(sinkFor(t, "out").gate)
	r := <-done
	if got := len(sinkFor(t, "out").packets()); got != 3000 || r.Degraded {
		t.Errorf("got %d of 3000, degraded %v", got, r.Degraded)
	}
}

func TestNodeErrorAndPanicAreAttributedAndTheGraphDrains(t *testing.T) {
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: ok}, {payload: bad}, {payload: ok}]}}
  - {id: forever, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 0}}
  - {id: fragile, kind: sink, plugin: "schnitzel_stream.test:Collect", config: {fail: %s, __runtime__: {inbox_max: 2}}}
  - {id: other, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: fragile}
  - {from: forever, to: fragile}
  - {from: forever, to: other}
`
	for _, mode := range []string{"error", "panic"} {
		r, _ := run(t, fmt.Sprintf(src, mode), Options{})
		if r.Err == nil || r.Err.NodeID != "fragile" {
			t.Fatalf("%s: want failure of node fragile, got %v", mode, r.Err)
		}
		if mode == "panic" && !strings.Contains(r.Err.Error(), "panic: boom") {
			t.Errorf("panic not reported: %v", r.Err)
		}
		for _, id := range []string{"fragile", "other"} {
			if sinkFor(t, id).closed.Load() != 1 {
				t.Errorf("%s: node %s not closed", mode, id)
			}
		}
	}
}

func TestPacketErrorDegradesAndNacks(t *testing.T) {
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: ok}, {payload: bad}, {payload: ok}]}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect", config: {fail: drop}}
edges:
  - {from: src, to: out}
`
	r, _ := run(t, src, Options{})
	if r.Err != nil || !r.Degraded || metric(r, "out").Errors != 1 || len(sinkFor(t, "out").packets()) != 2 {
		t.Errorf("err %v degraded %v errors %d", r.Err, r.Degraded, metric(r, "out").Errors)
	}
}

func TestStopDrainsAndClosesEverything(t *testing.T) {
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 0}}
  - {id: mid, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
`
	x, err := New(plan(t, src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result)
	go func() { done <- x.Run(context.Background()) }()
	for x.Snapshot().SourceEmitted < 1000 {
		time.Sleep(time.Millisecond)
	}
	x.Stop()
	r := <-done
	got := int64(len(sinkFor(t, "out").packets()))
	if !r.Stopped || r.Err != nil || got != r.SourceEmitted {
		t.Errorf("stopped %v err %v: sink got %d of %d emitted (in-flight packets lost)", r.Stopped, r.Err, got, r.SourceEmitted)
	}
	if sinkFor(t, "out").closed.Load() != 1 {
		t.Error("sink not closed")
	}
}

func TestPortsRouteAndCyclesRun(t *testing.T) {
	src := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 3}, {payload: 0}, {payload: 5}]}}
  - {id: loop, kind: delay, plugin: "schnitzel_stream.test:Countdown"}
  - {id: finished, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: loop}
  - {from: loop, to: loop, from_port: loop}
  - {from: loop, to: finished, from_port: done}
`
	r, _ := run(t, src, Options{})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	got := sinkFor(t, "finished").packets()
	if len(got) != 3 {
		t.Fatalf("finished got %d packets, want 3", len(got))
	}
	for _, p := range got {
		if p.Payload != int64(0) {
			t.Errorf("packet left the loop early: %v", p.Payload)
		}
	}
	if m := metric(r, "loop"); m.Consumed != 4+1+6 {
		t.Errorf("loop consumed %d, want 11", m.Consumed)
	}
}

func TestFanOutFanIn(t *testing.T) {
	src := `version: 2
nodes:
  - {id: a, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 500}}
  - {id: b, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 300}}
  - {id: x, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: y, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: a, to: x}
  - {from: a, to: y}
  - {from: b, to: y}
  - {from: x, to: out}
  - {from: y, to: out}
`
	r, _ := run(t, src, Options{BatchMax: 7})
	if got := len(sinkFor(t, "out").packets()); got != 500*2+300 {
		t.Errorf("out got %d, want 1300", got)
	}
	if metric(r, "y").Consumed != 800 {
		t.Errorf("y consumed %d", metric(r, "y").Consumed)
	}
}

func TestConstructorFailureClosesBuiltNodes(t *testing.T) {
	src := `version: 2
nodes:
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
  - {id: broken, plugin: "schnitzel_stream.test:FailBuild"}
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource"}
edges:
  - {from: src, to: broken}
  - {from: broken, to: out}
`
	_, err := New(plan(t, src), Options{})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.NodeID != "broken" || ne.Phase != "build" {
		t.Fatalf("want build error of node broken, got %v", err)
	}
	if sinkFor(t, "out").closed.Load() != 1 {
		t.Error("a node built before the failure was not closed")
	}
}

func TestPrintSinkOutput(t *testing.T) {
	src := `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
    config:
      packets:
        - {kind: demo, source_id: demo01, ts: "2026-01-01T00:00:00Z", payload: {message: "héllo", value: 1, r: 0.5}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink", config: {prefix: "DEV "}}
edges:
  - {from: src, to: out}
`
	var buf bytes.Buffer
	r, _ := run(t, src, Options{Stdout: &buf})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	line := buf.String()
	want := `", "ts": "2026-01-01T00:00:00Z", "kind": "demo", "source_id": "demo01", "payload": {"message": "h\u00e9llo", "value": 1, "r": 0.5}, "meta": {}}` + "\n"
	if !strings.HasPrefix(line, `DEV {"packet_id": "`) || !strings.HasSuffix(line, want) {
		t.Errorf("got %q", line)
	}
}

func TestMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("long: -short")
	}
	const n = 1_000_000
	x, err := New(plan(t, fmt.Sprintf(strings.Replace(chain, "schnitzel_stream.test:Collect", "schnitzel_stream.nodes.dev:Identity", 1), n)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result)
	go func() { done <- x.Run(context.Background()) }()
	var peak uint64
	var ms goruntime.MemStats
	for {
		select {
		case r := <-done:
			if r.Err != nil || metric(r, "out").Consumed != n {
				t.Fatalf("err %v consumed %d", r.Err, metric(r, "out").Consumed)
			}
			// A run that kept its packets would need > 250 MiB here.
			if peak > 64<<20 {
				t.Errorf("heap in use peaked at %d MiB for %d packets: memory grows with packets", peak>>20, n)
			}
			t.Logf("peak heap in use %.1f MiB for %d packets", float64(peak)/(1<<20), n)
			return
		case <-time.After(20 * time.Millisecond):
			goruntime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
}

// hinted is a source that records the Downstream hint it got.
type hinted struct{ next []any }

var hints = map[string]*hinted{}

func (h *hinted) Downstream(next any, skipped func(int64)) {
	h.next = append(h.next, next)
	skipped(3) // three packets "dropped ahead": counted as if they had travelled
}
func (h *hinted) Run(context.Context, plugin.Emitter) error { return nil }

func TestDownstreamHint(t *testing.T) {
	cases := []struct {
		name, graph string
		opts        Options
		want        bool
	}{
		{"one edge to a node with one input", `
  - {id: src, kind: source, plugin: "schnitzel_stream.test:Hinted"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: out}`, Options{}, true},
		{"fan-out", `
  - {id: src, kind: source, plugin: "schnitzel_stream.test:Hinted"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
  - {id: out2, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: out}
  - {from: src, to: out2}`, Options{}, false},
		{"next has another input", `
  - {id: src, kind: source, plugin: "schnitzel_stream.test:Hinted"}
  - {id: other, kind: source, plugin: "schnitzel_stream.test:Hinted"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: out}
  - {from: other, to: out}`, Options{}, false},
		{"max-events budget", `
  - {id: src, kind: source, plugin: "schnitzel_stream.test:Hinted"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: out}`, Options{MaxEvents: 5}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := run(t, "version: 2\nnodes:"+tc.graph+"\n", tc.opts)
			sinksMu.Lock()
			h := hints[t.Name()+"/src"]
			sinksMu.Unlock()
			if got := len(h.next) == 1; got != tc.want {
				t.Fatalf("hinted %d times, want hint %v", len(h.next), tc.want)
			}
			if tc.want {
				if n, ok := h.next[0].(*testNode); !ok || n.c != sinkFor(t, "out") {
					t.Fatalf("hint got %T, not the out node", h.next[0])
				}
				if src, out := metric(r, "src"), metric(r, "out"); r.SourceEmitted != 3 || src.Produced != 3 || out.Consumed != 3 || len(sinkFor(t, "out").packets()) != 0 {
					t.Fatalf("skipped packets not accounted: source_emitted %d, src produced %d, out consumed %d", r.SourceEmitted, src.Produced, out.Consumed)
				}
			}
		})
	}
}

// blob weighs MiB megabytes (packet.Sized) without holding them.
type blob struct{ MiB int }

func (b blob) SizeBytes() int { return b.MiB << 20 }

type heavyCfg struct {
	Count  int  `yaml:"count"`
	MiB    int  `yaml:"mib"`
	Marked bool `yaml:"marked"` // declare plugin.LargePackets
}

// heavy emits count packets whose payload holds a blob.
type heavy struct{ cfg heavyCfg }

func (h *heavy) Run(_ context.Context, out plugin.Emitter) error {
	for i := 0; i < h.cfg.Count; i++ {
		if err := out.Emit(packet.New("frame", "cam", packet.MapOf("frame", blob{h.cfg.MiB}, "i", int64(i)), "", nil)); err != nil {
			return err
		}
	}
	return nil
}

type markedHeavy struct{ heavy }

func (*markedHeavy) LargePackets() {}

// TestInboxBytesBoundHoldsFramesBack: in a graph whose source declares
// LargePackets, a stalled sink holds the source back after a few tens of
// MiB, not after inbox_max (1024) packets; nothing is lost when it resumes.
// Without the declaration only the packet count bounds the inboxes.
func TestInboxBytesBoundHoldsFramesBack(t *testing.T) {
	const src = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.test:Heavy", config: {count: 100, mib: 10, marked: %v}}
  - {id: mid, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect", config: {gate: true}}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
`
	for _, marked := range []bool{true, false} {
		t.Run(fmt.Sprint("marked=", marked), func(t *testing.T) {
			x, err := New(plan(t, fmt.Sprintf(src, marked)), Options{InboxBytes: 32 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if x.LargePackets() != marked {
				t.Fatalf("LargePackets() = %v", x.LargePackets())
			}
			done := make(chan *Result)
			go func() { done <- x.Run(context.Background()) }()
			// Let the source run until it blocks (or ends).
			var last int64 = -1
			for i := 0; i < 200; i++ {
				time.Sleep(5 * time.Millisecond)
				if e := x.Snapshot().SourceEmitted; e == last && e > 0 {
					break
				} else {
					last = e
				}
			}
			snap := x.Snapshot()
			var queuedBytes int64
			for _, n := range snap.Nodes {
				queuedBytes += n.InboxBytes
				if marked && n.InboxBytes > 42<<20 {
					t.Errorf("node %s holds %d MiB of frames, bound 32 MiB + one packet", n.ID, n.InboxBytes>>20)
				}
			}
			if marked {
				// mid's inbox (4 x 10 MiB) + one in mid + out's inbox (4) + one
				// in the gated sink + one blocked push.
				if snap.SourceEmitted > 11 || queuedBytes == 0 {
					t.Errorf("source emitted %d packets of 10 MiB past a stalled sink (inboxes hold %d MiB)", snap.SourceEmitted, queuedBytes>>20)
				}
			} else if snap.SourceEmitted != 100 || queuedBytes != 0 {
				t.Errorf("without LargePackets: emitted %d, inbox bytes %d; want 100 and 0 (count bound only)", snap.SourceEmitted, queuedBytes)
			}
			close(sinkFor(t, "out").gate)
			r := <-done
			if got := len(sinkFor(t, "out").packets()); got != 100 || r.Degraded {
				t.Errorf("got %d of 100, degraded %v", got, r.Degraded)
			}
		})
	}
}

func TestInboxByteBound(t *testing.T) {
	it := func(w int64) item { return item{p: &packet.Packet{}, w: w} }
	t.Run("empty inbox takes a packet heavier than the bound", func(t *testing.T) {
		in := newInbox(10, 5, overflowBlock, 1)
		if _, err := in.push([]item{it(8)}); err != nil {
			t.Fatal(err)
		}
		if n, b := in.depth(); n != 1 || b != 8 {
			t.Fatalf("depth %d, %d bytes", n, b)
		}
	})
	t.Run("a taken batch counts until the receiver's next take", func(t *testing.T) {
		in := newInbox(10, 10, overflowBlock, 1)
		in.push([]item{it(0), it(6)})
		if got, _ := in.take(0); len(got) != 2 {
			t.Fatalf("took %d, want the whole batch (6 bytes)", len(got))
		}
		if n, b := in.depth(); n != 0 || b != 6 {
			t.Fatalf("after take: %d queued, %d bytes; the batch in process must still count", n, b)
		}
		in.push([]item{it(3)}) // 9
		in.push([]item{it(0)}) // 9: under the bound when pushed
		in.push([]item{it(3)}) // 12: under the bound when pushed, full now
		pushed := make(chan struct{})
		go func() { in.push([]item{it(1)}); close(pushed) }()
		select {
		case <-pushed:
			t.Fatal("a push passed while the receiver's batch and the queue exceed the bound")
		case <-time.After(20 * time.Millisecond):
		}
		if got, _ := in.take(0); len(got) != 1 { // releases the 6 of the last batch, lends 3
			t.Fatalf("took %d, want 1", len(got))
		}
		<-pushed
		if n, b := in.depth(); n != 3 || b != 7 {
			t.Fatalf("%d queued, %d bytes; want 3 queued, 7 bytes (3 lent, 3 + 1 queued)", n, b)
		}
	})
	t.Run("a batch carries one heavy packet, with the light ones before it", func(t *testing.T) {
		in := newInbox(10, 100, overflowBlock, 1)
		in.push([]item{it(0), it(0), it(3), it(0), it(4), it(0)})
		in.closeSender()
		var sizes []int
		for {
			got, ok := in.take(0)
			if !ok {
				break
			}
			sizes = append(sizes, len(got))
		}
		if fmt.Sprint(sizes) != "[3 2 1]" {
			t.Fatalf("batches %v, want [3 2 1]", sizes)
		}
	})
	t.Run("drop_oldest drops until below the bound", func(t *testing.T) {
		in := newInbox(10, 10, overflowDropOldest, 1)
		in.push([]item{it(4), it(4), it(4)}) // 12: full after the third
		dropped, _ := in.push([]item{it(9)}) // 12 → drop 4 (8) → take 9: 17
		if n, b := in.depth(); dropped != 1 || n != 3 || b != 17 {
			t.Fatalf("dropped %d, left %d packets of %d bytes; want 1 dropped, 3 left, 17 bytes", dropped, n, b)
		}
		dropped, _ = in.push([]item{it(1)}) // 17 → drop 4, 4 (9) → take 1: 10
		if n, b := in.depth(); dropped != 2 || n != 2 || b != 10 {
			t.Fatalf("dropped %d, left %d packets of %d bytes; want 2 dropped, 2 left, 10 bytes", dropped, n, b)
		}
	})
	t.Run("drop_new refuses while over the bytes", func(t *testing.T) {
		in := newInbox(10, 10, overflowDropNew, 1)
		dropped, _ := in.push([]item{it(6), it(6), it(6), it(0)})
		if n, b := in.depth(); dropped != 2 || n != 2 || b != 12 {
			t.Fatalf("dropped %d, left %d packets of %d bytes", dropped, n, b)
		}
	})
	t.Run("no byte bound: weights are not counted", func(t *testing.T) {
		in := newInbox(10, 0, overflowBlock, 1)
		in.push([]item{it(6), it(6)})
		if got, _ := in.take(0); len(got) != 2 {
			t.Fatalf("took %d, want both", len(got))
		}
		if _, b := in.depth(); b != 0 {
			t.Fatalf("bytes %d", b)
		}
	})
}
