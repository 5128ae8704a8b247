package natsnodes_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// A replay of the same idempotency keys is stored once: the stream holds N.
func TestJetStreamDedupReplay(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	g := yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
    config:
      packets:
        - {kind: event, source_id: cam01, payload: {n: 1}, meta: {idempotency_key: k1}}
        - {kind: event, source_id: cam01, payload: {n: 2}, meta: {idempotency_key: k2}}
        - {kind: event, source_id: cam02, payload: {n: 3}, meta: {idempotency_key: k3}}
  - id: js
    kind: sink
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config: {url: %s, subject: "events.{source_id}", stream: EVENTS, create_stream: true}
edges:
  - {from: src, to: js}
`, srv.URL())
	reg := registry()
	first := plugintest.RunGraph(t, g, reg)
	second := plugintest.RunGraph(t, g, reg)
	_, js := natstest.Client(t, srv.URL())
	if n := streamMsgs(t, js, "EVENTS"); n != 3 {
		t.Errorf("stream holds %d messages after a replay, want 3", n)
	}
	if d := metric(t, first.Report.Metrics, "node.js.duplicate_total"); d != 0 {
		t.Errorf("first run: duplicate_total = %d, want 0", d)
	}
	if d := metric(t, second.Report.Metrics, "node.js.duplicate_total"); d != 3 {
		t.Errorf("replay: duplicate_total = %d, want 3", d)
	}
	if s := second.Report.Status; s != "ok" {
		t.Errorf("replay status %q, want ok", s)
	}
}

// Bad subjects: an invalid resolved subject drops that packet (degraded),
// the others go through.
func TestJetStreamInvalidSubject(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	g := yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
    config:
      packets:
        - {kind: event, source_id: cam01, payload: {zone: a}}
        - {kind: event, source_id: cam01, payload: {zone: "has space"}}
        - {kind: event, source_id: cam01, payload: {zone: "*"}}
        - {kind: event, source_id: cam01, payload: {other: 1}}
        - {kind: event, source_id: cam01, payload: {zone: b}}
  - id: js
    kind: sink
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config: {url: %s, subject: "zones.{payload.zone}", stream: ZONES, create_stream: true}
edges:
  - {from: src, to: js}
`, srv.URL())
	r := plugintest.RunGraph(t, g, registry())
	if got := metric(t, r.Report.Metrics, "node.js.invalid_subject_total"); got != 3 {
		t.Errorf("invalid_subject_total = %d, want 3", got)
	}
	if r.Report.Status != "degraded" {
		t.Errorf("status %q, want degraded", r.Report.Status)
	}
	_, js := natstest.Client(t, srv.URL())
	if n := streamMsgs(t, js, "ZONES"); n != 2 {
		t.Errorf("stream holds %d, want 2", n)
	}
}

// A stream that exists with other subjects fails the start, naming both.
func TestJetStreamStreamMismatch(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	_, js := natstest.Client(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := plugintest.TryRunGraph(context.Background(), yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: 0, count: 1}
  - id: js
    kind: sink
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config: {url: %s, subject: "events.{source_id}", stream: EVENTS, create_stream: true}
edges:
  - {from: src, to: js}
`, srv.URL()), registry())
	if err == nil || !strings.Contains(err.Error(), `stream "EVENTS" exists with subjects [other.>]`) || !strings.Contains(err.Error(), `node "js"`) {
		t.Fatalf("err = %v, want the node and the stream's subjects named", err)
	}
}

// Wrong credentials: Start fails at once naming the node and the cause.
func TestWrongCredentials(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{Token: "right"})
	for _, plug := range []string{"JetStreamSink", "NatsSink"} {
		t.Run(plug, func(t *testing.T) {
			start := time.Now()
			_, err := plugintest.TryRunGraph(context.Background(), yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: 0, count: 1}
  - id: pub
    kind: sink
    plugin: schnitzel_stream.nodes.nats:%s
    config: {url: %s, token: wrong, subject: "events.x", stream: EVENTS}
edges:
  - {from: src, to: pub}
`, plug, srv.URL()), registry())
			if plug == "NatsSink" {
				// stream is not a NatsSink key: the graph is invalid before any connection.
				if err == nil || !strings.Contains(err.Error(), "stream") {
					t.Fatalf("err = %v, want the unknown key named", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), `node "pub"`) || !strings.Contains(err.Error(), "credentials refused") || !strings.Contains(err.Error(), "uthorization") {
				t.Fatalf("err = %v, want node, credentials refused and the server's cause", err)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("the token leaked into the error: %v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to give up on refused credentials", d)
			}
		})
	}
}

// nackSink is a committing sink for tests: it nacks packets whose payload
// has poison: true and acks the others.
type nackSink struct{}

func (nackSink) Process(_ context.Context, p *packet.Packet, _ plugin.Emitter) error {
	m, _ := p.Payload.(*packet.Map)
	if v, _ := m.Get("poison"); v == true {
		if p.Nack != nil {
			p.Nack(errors.New("poison"))
		}
		return nil
	}
	if p.Ack != nil {
		p.Ack()
	}
	return nil
}

func registryWithNack() *plugin.Registry {
	reg := registry()
	plugin.Register(reg, plugin.Spec[struct{}]{
		Name: "test.nodes:NackSink", Role: plugin.RoleSink, Commits: true, Summary: "test",
		NewProcessor: func(struct{}, plugin.Env) (plugin.Processor, error) { return nackSink{}, nil },
	})
	return reg
}

// A message nacked on every delivery goes to the dead-letter subject after
// max_deliver, with the reason; a body that is not a packet goes at once.
func TestJetStreamDeadLetter(t *testing.T) {
	t.Setenv("ALLOWED_PLUGIN_PREFIXES", "schnitzel_stream.,test.")
	srv := natstest.Start(t, natstest.Options{})
	nc, js := natstest.Client(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sc := range []jetstream.StreamConfig{{Name: "EVENTS", Subjects: []string{"events.>"}}, {Name: "DLQ", Subjects: []string{"dlq.>"}}} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	pub := func(body string) {
		if _, err := js.Publish(ctx, "events.cam01", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	good := packet.New("event", "cam01", packet.MapOf("n", int64(1)), "", nil)
	poison := packet.New("event", "cam01", packet.MapOf("poison", true), "", nil)
	for _, p := range []*packet.Packet{good, poison} {
		b, err := packet.AppendPacketJSON(nil, p, packet.JSONOptions{Style: packet.Compact})
		if err != nil {
			t.Fatal(err)
		}
		pub(string(b))
	}
	pub("not json at all")
	_ = nc
	g := yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.nats:JetStreamSource
    config:
      url: %s
      stream: EVENTS
      durable: dl
      follow: false
      max_deliver: 3
      nak_delay_sec: 0.01
      ack_wait_sec: 2
      idle_wait_sec: 0.1
      dead_letter_subject: dlq.events
  - id: out
    kind: sink
    plugin: test.nodes:NackSink
edges:
  - {from: src, to: out}
`, srv.URL())
	r := plugintest.RunGraph(t, g, registryWithNack())
	if got := metric(t, r.Report.Metrics, "node.src.dead_letter_total"); got != 2 {
		t.Errorf("dead_letter_total = %d, want 2", got)
	}
	if got := metric(t, r.Report.Metrics, "node.src.nacked_total"); got != 2 {
		t.Errorf("nacked_total = %d, want 2 (deliveries 1 and 2 of the poison)", got)
	}
	if got := metric(t, r.Report.Metrics, "node.src.acked_total"); got != 1 {
		t.Errorf("acked_total = %d, want 1", got)
	}
	if r.Report.Status != "degraded" {
		t.Errorf("status %q, want degraded", r.Report.Status)
	}
	if n := streamMsgs(t, js, "DLQ"); n != 2 {
		t.Fatalf("DLQ holds %d, want 2", n)
	}
	dlq, err := js.Stream(ctx, "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	var reasons, delivers []string
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, m.Header.Get("Schnitzel-Error"))
		delivers = append(delivers, m.Header.Get("Schnitzel-Deliveries"))
		if m.Header.Get("Schnitzel-Stream") != "EVENTS" || m.Header.Get("Schnitzel-Subject") != "events.cam01" {
			t.Errorf("dead letter %d headers %v", seq, m.Header)
		}
	}
	slices.Sort(reasons)
	if !strings.HasPrefix(reasons[0], "body is not a schnitzel packet") || reasons[1] != "poison" {
		t.Errorf("reasons %q", reasons)
	}
	slices.Sort(delivers)
	if !slices.Equal(delivers, []string{"1", "3"}) {
		t.Errorf("deliveries %v, want the garbage at 1 and the poison at 3", delivers)
	}
}

// Three sources with the same durable share the stream: the union is the
// input, no message twice, each got some. The workers wait for messages
// (follow) before they are published, so each has a pull request waiting.
func TestJetStreamWorkersShare(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	reg := registry()
	_, js := natstest.Client(t, srv.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	const n = 600
	g := yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.nats:JetStreamSource
    config: {url: %s, stream: EVENTS, durable: workers, follow: true, batch: 1, idle_wait_sec: 0.2, ack_wait_sec: 2}
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "OUT "}
edges:
  - {from: src, to: out}
`, srv.URL())
	var wg sync.WaitGroup
	got := make([][]string, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			r, err := plugintest.TryRunGraph(ctx, g, reg)
			errs[i] = err
			got[i] = printedIDs(t, r.Stdout, "OUT ")
		})
	}
	info := func() *jetstream.ConsumerInfo {
		ictx, icancel := context.WithTimeout(context.Background(), time.Second)
		defer icancel()
		c, err := js.Consumer(ictx, "EVENTS", "workers")
		if err != nil {
			return nil
		}
		i, err := c.Info(ictx)
		if err != nil {
			return nil
		}
		return i
	}
	poll.Until(t, 30*time.Second, "three workers waiting on the durable", func() bool {
		i := info()
		return i != nil && i.NumWaiting >= 3
	})
	pub := plugintest.RunGraph(t, publishGraph(srv.URL(), n), reg)
	in := printedIDs(t, pub.Stdout, "IN ")
	poll.Until(t, 30*time.Second, "every message acked", func() bool {
		i := info()
		return i != nil && i.AckFloor.Stream == n && i.NumAckPending == 0
	})
	cancel()
	wg.Wait()
	var union []string
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if len(got[i]) == 0 {
			t.Errorf("worker %d got nothing", i)
		}
		union = append(union, got[i]...)
	}
	slices.Sort(union)
	want := slices.Clone(in)
	slices.Sort(want)
	if !slices.Equal(union, want) {
		t.Errorf("union of the workers (%d) != input (%d)", len(union), len(want))
	}
	t.Logf("shares: %d %d %d", len(got[0]), len(got[1]), len(got[2]))
}

// SqliteQueueSource → JetStreamSink → SqliteQueueAckSink with the server
// stopped and restarted mid-stream: nothing lost, no duplicate in the
// stream, the local queue empty.
func TestForwardSurvivesServerRestart(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	reg := registry()
	dir := t.TempDir()
	q := filepath.Join(dir, "q.sqlite3")
	const n = 3000
	plugintest.RunGraph(t, yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: 0, count: %d}
  - id: q
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config: {path: %s}
edges:
  - {from: src, to: q}
`, n, q), reg)
	fwd := yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource
    config: {path: %s, limit: 50, drain: true}
  - id: js
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config:
      url: %s
      subject: "fwd.{source_id}"
      stream: FWD
      create_stream: true
      timeout_sec: 1
      retry_backoff_sec: 0.05
      retry_max_backoff_sec: 0.5
      reconnect_wait_sec: 0.1
  - id: ack
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink
    config: {path: %s}
edges:
  - {from: src, to: js}
  - {from: js, to: ack}
`, q, srv.URL(), q)
	done := make(chan *plugintest.GraphRun, 1)
	var runErr error
	go func() {
		r, err := plugintest.TryRunGraph(context.Background(), fwd, reg)
		runErr = err
		done <- r
	}()
	_, js := natstest.Client(t, srv.URL())
	poll.Until(t, 30*time.Second, "the stream to hold some messages", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "FWD")
		return err == nil && s.CachedInfo().State.Msgs >= 300
	})
	srv.Stop()
	srv.StartAgain()
	var r *plugintest.GraphRun
	select {
	case r = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("forward graph did not finish after the restart")
	}
	if runErr != nil {
		t.Fatalf("forward: %v", runErr)
	}
	if got := metric(t, r.Report.Metrics, "node.ack.acked_total"); got != n {
		t.Errorf("acked %d local rows, want %d", got, n)
	}
	if got := metric(t, r.Report.Metrics, "node.js.disconnects_total"); got < 1 {
		t.Errorf("disconnects_total = %d: the restart was not seen", got)
	}
	t.Logf("retries %d, duplicates %d, reconnects %d", metric(t, r.Report.Metrics, "node.js.retry_total"),
		metric(t, r.Report.Metrics, "node.js.duplicate_total"), metric(t, r.Report.Metrics, "node.js.reconnects_total"))
	_, js2 := natstest.Client(t, srv.URL())
	if got := streamMsgs(t, js2, "FWD"); got != n {
		t.Errorf("stream holds %d messages, want %d (no loss, no duplicate)", got, n)
	}
	// Every packet id once.
	sub := plugintest.RunGraph(t, strings.ReplaceAll(consumeGraph(srv.URL(), "check"), "EVENTS", "FWD"), reg)
	ids := printedIDs(t, sub.Stdout, "OUT ")
	slices.Sort(ids)
	if len(slices.Compact(ids)) != n {
		t.Errorf("%d distinct packet ids in the stream, want %d", len(slices.Compact(ids)), n)
	}
}
