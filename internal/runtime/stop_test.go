package runtime

import (
	"context"
	"errors"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/ops/sdnotify"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// blocker is a test node that blocks in Process: until its ctx is
// cancelled (mode ctx), or until the test releases it, ignoring ctx (mode
// ignore).
type blocker struct {
	mode    string
	entered chan struct{} // one value per Process call
	release chan struct{}
	late    atomic.Int64 // calls that started after ctx was cancelled
	calls   atomic.Int64
	closed  atomic.Int64
}

type blockCfg struct {
	Mode string `yaml:"mode"` // ctx | ignore
}

func (b *blocker) Process(ctx context.Context, _ *packet.Packet, _ plugin.Emitter) error {
	if ctx.Err() != nil {
		b.late.Add(1)
	}
	b.calls.Add(1)
	select {
	case b.entered <- struct{}{}:
	default:
	}
	if b.mode == "ignore" {
		<-b.release
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (b *blocker) Close(context.Context) error { b.closed.Add(1); return nil }

// nackCounter is a source that emits packets carrying a Nack hook until
// it is stopped, or count packets when count > 0.
type nackCounter struct {
	count  int
	nacked *atomic.Int64
}

type nackCfg struct {
	Count int `yaml:"count"`
}

func (s *nackCounter) Run(ctx context.Context, out plugin.Emitter) error {
	for i := 0; s.count == 0 || i < s.count; i++ {
		if ctx.Err() != nil {
			return nil
		}
		p := packet.New("test", "src", int64(i), packet.Now(), nil)
		p.Nack = func(error) { s.nacked.Add(1) }
		if err := out.Emit(p); err != nil {
			return nil
		}
	}
	return nil
}

var (
	blockersMu sync.Mutex
	blockers   = map[string]*blocker{}
	nacks      = map[string]*atomic.Int64{}
)

func blockerFor(t *testing.T, id string) *blocker {
	blockersMu.Lock()
	defer blockersMu.Unlock()
	return blockers[t.Name()+"/"+id]
}

func nacksFor(t *testing.T) *atomic.Int64 {
	blockersMu.Lock()
	defer blockersMu.Unlock()
	n := nacks[t.Name()]
	if n == nil {
		n = &atomic.Int64{}
		nacks[t.Name()] = n
	}
	return n
}

func stopPlan(t *testing.T, src string) *graph.Plan {
	t.Helper()
	r := registry(t)
	plugin.Register(r, plugin.Spec[blockCfg]{
		Name: "schnitzel_stream.test:Block", Role: plugin.RoleSink,
		New: func(c blockCfg, env plugin.Env) (any, error) {
			b := &blocker{mode: c.Mode, entered: make(chan struct{}, 1), release: make(chan struct{})}
			t.Cleanup(func() { close(b.release) })
			blockersMu.Lock()
			blockers[t.Name()+"/"+env.NodeID] = b
			blockersMu.Unlock()
			return b, nil
		},
	})
	nacked := nacksFor(t)
	plugin.Register(r, plugin.Spec[nackCfg]{
		Name: "schnitzel_stream.test:NackSource", Role: plugin.RoleSource,
		New: func(c nackCfg, _ plugin.Env) (any, error) { return &nackCounter{count: c.Count, nacked: nacked}, nil },
	})
	g, d := graph.Load("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if d.HasErrors() {
		t.Fatal(d)
	}
	p, vd := graph.Validate(g, r, plugin.Policy{AllowAll: true})
	if vd.HasErrors() {
		t.Fatal(vd)
	}
	return p
}

// start runs x in the background; the returned func waits for its Result
// (failing the test if Run does not return within a generous bound).
func start(t *testing.T, x *Executor) func() *Result {
	t.Helper()
	done := make(chan *Result, 1)
	go func() { done <- x.Run(context.Background()) }()
	return func() *Result {
		t.Helper()
		select {
		case r := <-done:
			return r
		case <-time.After(30 * time.Second):
			t.Fatalf("run did not return: the stop is not bounded; %+v inflight %d", x.Snapshot(), x.inflight.Load())
			return nil
		}
	}
}

const blockGraph = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.test:NackSource"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Block", config: {mode: %MODE%, __runtime__: {inbox_max: 8}}}
edges:
  - {from: src, to: out}
`

// A node blocked in Process until its ctx is cancelled, behind a full
// bounded inbox with the source blocked in Emit: Stop cancels the node ctx
// after StopTimeout, abandons the inbox (counted, never nacked), starts no
// new call, closes every node and returns the Result.
func TestStopTimeoutCancelsNodeContextAndAbandonsInbox(t *testing.T) {
	p := stopPlan(t, strings.ReplaceAll(blockGraph, "%MODE%", "ctx"))
	x, err := New(p, Options{StopTimeout: 50 * time.Millisecond, BatchMax: 4})
	if err != nil {
		t.Fatal(err)
	}
	wait := start(t, x)
	b := blockerFor(t, "out")
	<-b.entered
	poll.Until(t, 20*time.Second, "a full inbox", func() bool { return metric(&Result{Snapshot: x.Snapshot()}, "out").InboxDepth >= 8 })
	x.Stop()
	r := wait()
	if r.Err != nil {
		t.Fatalf("an interrupted call is not a failure: %v", r.Err)
	}
	if !r.Stopped || !r.StopExpired {
		t.Errorf("stopped %v expired %v, want both", r.Stopped, r.StopExpired)
	}
	out := metric(r, "out")
	// The inbox (8), the packet in the call (1) and what the blocked
	// source was handing over (its batch) are abandoned.
	if out.Abandoned < 9 || r.Abandoned != out.Abandoned {
		t.Errorf("abandoned node %d total %d, want >= 9 and equal", out.Abandoned, r.Abandoned)
	}
	// No call finished, so every emitted packet is abandoned exactly once.
	if r.SourceEmitted != out.Abandoned {
		t.Errorf("emitted %d, abandoned %d: packets unaccounted or counted twice (%+v)", r.SourceEmitted, out.Abandoned, out)
	}
	if n := nacksFor(t).Load(); n != 0 {
		t.Errorf("%d abandoned packets were nacked", n)
	}
	if b.late.Load() != 0 || b.calls.Load() != 1 {
		t.Errorf("calls %d, started after cancel %d: want 1 and 0", b.calls.Load(), b.late.Load())
	}
	if b.closed.Load() != 1 {
		t.Error("node not closed")
	}
	if !r.Degraded || len(r.Stuck) != 0 {
		t.Errorf("degraded %v stuck %v", r.Degraded, r.Stuck)
	}
}

// A sink that ignores its ctx is reported stuck after StopGrace; Close is
// still called and Run returns.
func TestStopReportsNodeThatIgnoresContext(t *testing.T) {
	p := stopPlan(t, strings.ReplaceAll(blockGraph, "%MODE%", "ignore"))
	x, err := New(p, Options{StopTimeout: 20 * time.Millisecond, StopGrace: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wait := start(t, x)
	b := blockerFor(t, "out")
	<-b.entered
	x.Stop()
	r := wait()
	if len(r.Stuck) != 1 || r.Stuck[0] != "out" {
		t.Fatalf("stuck %v, want [out]", r.Stuck)
	}
	if b.closed.Load() != 1 || !r.Degraded || r.Err != nil {
		t.Errorf("closed %d degraded %v err %v", b.closed.Load(), r.Degraded, r.Err)
	}
	if metric(r, "out").Abandoned < 1 {
		t.Error("the packet in the stuck call is not counted abandoned")
	}
}

// A stop that drains in time abandons nothing and does not expire.
func TestStopWithinTimeoutAbandonsNothing(t *testing.T) {
	p := stopPlan(t, `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.test:NackSource"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Collect"}
edges:
  - {from: src, to: out}
`)
	x, err := New(p, Options{StopTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	wait := start(t, x)
	poll.Until(t, 20*time.Second, "packets", func() bool { return x.Snapshot().SourceEmitted > 100 })
	x.Stop()
	r := wait()
	if r.StopExpired || r.Abandoned != 0 || r.Degraded || r.Err != nil {
		t.Errorf("expired %v abandoned %d degraded %v err %v", r.StopExpired, r.Abandoned, r.Degraded, r.Err)
	}
}

const identityLoop = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}, {payload: 2}]}}
  - {id: gate, kind: delay, plugin: "schnitzel_stream.nodes.dev:Identity"%GATE%}
  - {id: mid, plugin: "schnitzel_stream.nodes.dev:%MID%"}
edges:
  - {from: src, to: gate}
  - {from: gate, to: mid}
  - {from: mid, to: gate}
`

func loopGraph(mid, gate string) string {
	return strings.NewReplacer("%MID%", mid, "%GATE%", gate).Replace(identityLoop)
}

// Identity in a loop through a delay node circulates for ever: Stop ends
// it within the stop timeout, what circulates is abandoned and counted.
func TestStopEndsCirculatingCycle(t *testing.T) {
	x, err := New(stopPlan(t, loopGraph("Identity", "")), Options{StopTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wait := start(t, x)
	poll.Until(t, 20*time.Second, "circulation", func() bool { return metric(&Result{Snapshot: x.Snapshot()}, "mid").Consumed > 1000 })
	x.Stop()
	r := wait()
	if r.Err != nil || !r.StopExpired {
		t.Fatalf("err %v expired %v", r.Err, r.StopExpired)
	}
	if r.Abandoned != 2 {
		t.Errorf("abandoned %d, want the 2 circulating packets", r.Abandoned)
	}
	if r.SourceEmitted != 2 || metric(r, "gate").Abandoned+metric(r, "mid").Abandoned != 2 {
		t.Errorf("emitted %d, per node %d + %d", r.SourceEmitted, metric(r, "gate").Abandoned, metric(r, "mid").Abandoned)
	}
}

// A BurstNode in a loop grows the cycle: the delay node's bounded inbox
// fills and the run ends with an error naming it.
func TestGrowingCycleEndsWithError(t *testing.T) {
	src := strings.Replace(loopGraph("BurstNode", ""), `BurstNode"}`, `BurstNode", config: {count: 3}}`, 1)
	x, err := New(stopPlan(t, src), Options{InboxMax: 64})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, x)()
	if r.Err == nil || r.Err.NodeID != "gate" || !strings.Contains(r.Err.Error(), "the cycle grows faster than it drains") {
		t.Fatalf("err %v, want the gate's inbox named with the cycle growing", r.Err)
	}
	if m := metric(r, "gate"); m.InboxDepth > 64+256 {
		t.Errorf("gate inbox held %d packets: not bounded", m.InboxDepth)
	}
}

// With overflow drop_new the growing cycle drops instead and runs until
// stopped.
func TestGrowingCycleDropsWhenAsked(t *testing.T) {
	src := strings.Replace(loopGraph("BurstNode", `, config: {__runtime__: {inbox_overflow: drop_new}}`), `BurstNode"}`, `BurstNode", config: {count: 3}}`, 1)
	x, err := New(stopPlan(t, src), Options{InboxMax: 64, StopTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wait := start(t, x)
	poll.Until(t, 20*time.Second, "drops", func() bool { return metric(&Result{Snapshot: x.Snapshot()}, "gate").InboxDropped > 1000 })
	x.Stop()
	r := wait()
	if r.Err != nil || !r.StopExpired || r.Abandoned == 0 {
		t.Fatalf("err %v expired %v abandoned %d", r.Err, r.StopExpired, r.Abandoned)
	}
}

// Liveness: a node stuck in a call longer than the stall limit makes the
// watchdog stop pinging (a fake NOTIFY_SOCKET counts the pings); when the
// call returns, pings resume.
func TestWatchdogStopsPingingWhileANodeIsStuck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "40000") // pings every 20 ms
	t.Setenv("WATCHDOG_PID", "")

	p := stopPlan(t, `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.test:NackSource", config: {count: 2}}
  - {id: stuck, kind: sink, plugin: "schnitzel_stream.test:Block", config: {mode: ignore}}
edges:
  - {from: src, to: stuck}
`)
	x, err := New(p, Options{StopTimeout: 10 * time.Millisecond, StopGrace: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const stall = 100 * time.Millisecond
	if err := x.Liveness(stall); err != nil {
		t.Fatalf("not started, not live: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sdnotify.RunWatchdog(ctx, func() error { return x.Liveness(stall) })
	read := func(within time.Duration) bool {
		buf := make([]byte, 64)
		_ = conn.SetReadDeadline(time.Now().Add(within))
		n, err := conn.Read(buf)
		if err == nil && string(buf[:n]) != sdnotify.Watchdog {
			t.Fatalf("unexpected datagram %q", buf[:n])
		}
		return err == nil
	}
	if !read(5 * time.Second) {
		t.Fatal("no ping while healthy")
	}
	wait := start(t, x)
	b := blockerFor(t, "stuck")
	<-b.entered
	var se *StallError
	poll.Until(t, 20*time.Second, "liveness lost", func() bool { return errors.As(x.Liveness(stall), &se) })
	if se.NodeID != "stuck" || se.InCall <= stall {
		t.Errorf("stall error %+v", se)
	}
	// Drain pings sent before liveness was lost, then expect none for
	// many ping periods.
	for read(30 * time.Millisecond) {
	}
	if read(300 * time.Millisecond) {
		t.Fatal("watchdog pinged while a node was stuck in its call")
	}
	b.release <- struct{}{} // the call returns; the node takes the next packet, a new call
	if !read(5 * time.Second) {
		t.Fatal("no ping after the stuck call returned")
	}
	x.Stop()
	wait()
}

// A node blocked handing packets to a full inbox is live (backpressure),
// and so is one waiting for input.
func TestLivenessBackpressureAndIdleAreLive(t *testing.T) {
	p := stopPlan(t, `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.test:NackSource"}
  - {id: mid, plugin: "schnitzel_stream.nodes.dev:Identity", config: {__runtime__: {inbox_max: 4}}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Block", config: {mode: ctx, __runtime__: {inbox_max: 4}}}
edges:
  - {from: src, to: mid}
  - {from: mid, to: out}
`)
	x, err := New(p, Options{StopTimeout: 10 * time.Millisecond, BatchMax: 2})
	if err != nil {
		t.Fatal(err)
	}
	wait := start(t, x)
	<-blockerFor(t, "out").entered
	poll.Until(t, 20*time.Second, "mid blocked on out's inbox", func() bool { return x.byID["mid"].pushing.Load() })
	var se *StallError
	poll.Until(t, 20*time.Second, "out stalls", func() bool { return errors.As(x.Liveness(time.Millisecond), &se) })
	if se.NodeID != "out" {
		t.Errorf("stalled node %q, want out (mid is only blocked behind it)", se.NodeID)
	}
	x.Stop()
	wait()
}
