package ionodes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// These tests run the sink inside the real runtime, between a source whose
// packets carry Nack callbacks (as the durable queue source's do) and an
// ack recorder, to check what the store-and-forward graph relies on: only
// delivered packets reach the ack sink, and each given-up packet is nacked
// exactly once.

// ledger records acks and nacks of one test run.
type ledger struct {
	mu    sync.Mutex
	acked []int64
	nacks map[int64]int
}

var ledgers sync.Map // tag -> *ledger

type nackSourceCfg struct {
	Tag   string `yaml:"tag"`
	Count int64  `yaml:"count"`
}

type nackSource struct{ cfg nackSourceCfg }

func (s *nackSource) Run(ctx context.Context, out plugin.Emitter) error {
	v, _ := ledgers.Load(s.cfg.Tag)
	l := v.(*ledger)
	for i := int64(0); i < s.cfg.Count; i++ {
		if ctx.Err() != nil {
			return nil
		}
		seq := i
		p := packet.New("event", "t", packet.MapOf("seq", seq), "", packet.MapOf("idempotency_key", fmt.Sprintf("k-%d", seq)))
		p.Nack = func(error) {
			l.mu.Lock()
			l.nacks[seq]++
			l.mu.Unlock()
		}
		if err := out.Emit(p); err != nil {
			return nil
		}
	}
	return nil
}

type ackSinkCfg struct {
	Tag string `yaml:"tag"`
}

type ackSink struct{ l *ledger }

func (s *ackSink) Process(_ context.Context, p *packet.Packet, _ plugin.Emitter) error {
	m := p.Payload.(*packet.Map)
	seq, _ := m.Get("seq")
	if _, ok := p.Meta.Get("http"); !ok {
		return fmt.Errorf("packet %v reached the ack sink without meta.http", seq)
	}
	s.l.mu.Lock()
	s.l.acked = append(s.l.acked, seq.(int64))
	s.l.mu.Unlock()
	return nil
}

func runtimeRegistry() *plugin.Registry {
	r := testRegistry()
	plugin.Register(r, plugin.Spec[nackSourceCfg]{
		Name: "schnitzel_stream.test:NackSource", Role: plugin.RoleSource,
		New: func(c nackSourceCfg, _ plugin.Env) (any, error) { return &nackSource{cfg: c}, nil },
	})
	plugin.Register(r, plugin.Spec[ackSinkCfg]{
		Name: "schnitzel_stream.test:AckSink", Role: plugin.RoleSink,
		New: func(c ackSinkCfg, _ plugin.Env) (any, error) {
			v, _ := ledgers.Load(c.Tag)
			return &ackSink{l: v.(*ledger)}, nil
		},
	})
	return r
}

func runGraph(t *testing.T, src string) *runtime.Result {
	t.Helper()
	g, d := graph.Load("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if d.HasErrors() {
		t.Fatal(d)
	}
	plan, vd := graph.Validate(g, runtimeRegistry(), plugin.Policy{AllowAll: true})
	if vd.HasErrors() {
		t.Fatal(vd)
	}
	x, err := runtime.New(plan, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *runtime.Result, 1)
	go func() { done <- x.Run(context.Background()) }()
	select {
	case r := <-done:
		return r
	case <-time.After(30 * time.Second):
		x.Abort()
		t.Fatal("run did not finish")
		return nil
	}
}

// oddSeqFails answers 503 for packets whose idempotency key k-<seq> has an
// odd seq.
func oddSeqFails(_ int, r *http.Request) int {
	var seq int64
	_, _ = fmt.Sscanf(r.Header.Get("Idempotency-Key"), "k-%d", &seq)
	if seq%2 == 1 {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

func TestHTTPSinkInRuntimeAcksDeliveredAndNacksGivenUp(t *testing.T) {
	for _, raise := range []bool{false, true} {
		t.Run(fmt.Sprintf("raise_on_fail=%v", raise), func(t *testing.T) {
			rc := newReceiver(t, oddSeqFails)
			tag := t.Name()
			l := &ledger{nacks: map[int64]int{}}
			ledgers.Store(tag, l)
			const n = 6
			src := fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.test:NackSource", config: {tag: %q, count: %d}}
  - id: http
    kind: node
    plugin: schnitzel_stream.nodes.http:HttpJsonSink
    config: {url: %q, retry_max_attempts: 2, retry_backoff_sec: 0.001, forward: true, raise_on_fail: %v}
  - {id: ack, kind: sink, plugin: "schnitzel_stream.test:AckSink", config: {tag: %q}}
edges:
  - {from: src, to: http}
  - {from: http, to: ack}
`, tag, n, rc.srv.URL+"/events", raise, tag)
			r := runGraph(t, src)
			l.mu.Lock()
			defer l.mu.Unlock()
			sort.Slice(l.acked, func(i, j int) bool { return l.acked[i] < l.acked[j] })

			if raise {
				if r.Err == nil || r.Err.NodeID != "http" || !strings.Contains(r.Err.Error(), "http delivery failed") {
					t.Fatalf("raise_on_fail: run error = %v, want the http node's give-up", r.Err)
				}
				if len(l.acked) == 0 || l.acked[0] != 0 {
					t.Errorf("acked %v, want seq 0 (delivered before the failure)", l.acked)
				}
				for _, seq := range l.acked {
					if seq%2 == 1 {
						t.Errorf("undelivered seq %d was acked", seq)
					}
				}
				return
			}
			if r.Err != nil {
				t.Fatalf("run error: %v", r.Err)
			}
			if !r.Degraded {
				t.Errorf("run not degraded although packets were given up")
			}
			if got, want := fmt.Sprint(l.acked), "[0 2 4]"; got != want {
				t.Errorf("acked %s, want %s (only delivered packets)", got, want)
			}
			if got, want := fmt.Sprint(l.nacks), "map[1:1 3:1 5:1]"; got != want {
				t.Errorf("nacks %s, want %s (each given-up packet exactly once)", got, want)
			}
			for _, ns := range r.Nodes {
				if ns.ID != "http" {
					continue
				}
				b, _ := json.Marshal(ns.Extension)
				// The sink nacks given-up packets itself (they finish after
				// ProcessBatch returned), so the runtime's per-node error
				// count stays 0 and failed_total carries them.
				if !strings.Contains(string(b), `"Name":"failed_total","Value":3`) || ns.Lost != 3 {
					t.Errorf("http node: metrics %s", b)
				}
			}
		})
	}
}

// TestHTTPSinkInRuntimeAcksBeforeTheBatchEnds: in the real runtime, a
// delivered packet reaches the ack sink while a slower packet of the same
// input batch is still in flight (the receiver holds the last packet until
// it sees every other packet acked).
func TestHTTPSinkInRuntimeAcksBeforeTheBatchEnds(t *testing.T) {
	tag := t.Name()
	l := &ledger{nacks: map[int64]int{}}
	ledgers.Store(tag, l)
	const n = 10
	acked := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.acked)
	}
	var sawAllAcked bool
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		if r.Header.Get("Idempotency-Key") == fmt.Sprintf("k-%d", n-1) {
			deadline := time.Now().Add(10 * time.Second)
			for acked() < n-1 && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			sawAllAcked = acked() == n-1
		}
		return http.StatusOK
	})
	src := fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.test:NackSource", config: {tag: %q, count: %d}}
  - {id: http, kind: node, plugin: schnitzel_stream.nodes.http:HttpJsonSink, config: {url: %q, forward: true}}
  - {id: ack, kind: sink, plugin: "schnitzel_stream.test:AckSink", config: {tag: %q}}
edges:
  - {from: src, to: http}
  - {from: http, to: ack}
`, tag, n, rc.srv.URL, tag)
	r := runGraph(t, src)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if !sawAllAcked {
		t.Errorf("the other packets were not acked while the last one was in flight")
	}
	if acked() != n {
		t.Errorf("acked %d, want %d", acked(), n)
	}
}
