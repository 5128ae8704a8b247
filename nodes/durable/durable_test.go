package durable

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	Register(r)
	return r
}

func build(t *testing.T, class, kind string, kv ...any) any {
	t.Helper()
	n := plugintest.Build(t, registry(), mod+class, kind, packet.MapOf(kv...))
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n
}

func metric(n any, name string) int64 {
	for _, m := range n.(plugin.Metrics).Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	return -1
}

func pk(i int, meta *packet.Map) *packet.Packet {
	return packet.New("demo", "demo01", packet.MapOf("message", "durable enqueue", "value", int64(i)), "", meta)
}

func blockOf(t *testing.T, p *packet.Packet) *packet.Map {
	t.Helper()
	v, ok := p.Meta.Get("durable")
	if !ok {
		t.Fatalf("no durable block in %v", p.Meta)
	}
	return v.(*packet.Map)
}

func TestEnqueueDrainAck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queues", "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path, "forward", true)
	p1 := pk(1, packet.MapOf("idempotency_key", "k1"))
	p1dup := pk(99, packet.MapOf("idempotency_key", "k1"))
	out := plugintest.Process(t, sink, p1, pk(2, nil), p1dup, pk(3, nil))
	if len(out) != 4 {
		t.Fatalf("forwarded %d", len(out))
	}
	b := blockOf(t, out[0])
	if got := strings.Join(b.Keys(), ","); got != "queue,path,seq,node_id,queue_id" {
		t.Fatalf("block keys %s", got)
	}
	if s, _ := b.GetString("path"); s != path {
		t.Fatalf("block path %q", s)
	}
	if seq, _ := blockOf(t, out[2]).Get("seq"); seq != int64(1) {
		t.Fatalf("dup seq %v, want the first row's", seq)
	}
	if metric(sink, "enqueued_total") != 4 || metric(sink, "dedup_total") != 1 || metric(sink, "dedup_conflict_total") != 1 || metric(sink, "queue_depth") != 3 {
		t.Fatalf("sink metrics %+v", sink.(plugin.Metrics).Metrics())
	}

	src := build(t, "SqliteQueueSource", "source", "path", path, "limit", int64(2))
	got := plugintest.RunSource(t, src, 0)
	if len(got) != 2 {
		t.Fatalf("one batch of limit 2 expected, got %d", len(got))
	}
	if got[0].ID != p1.ID || got[0].TS != p1.TS {
		t.Fatal("stored packet identity not kept")
	}
	if a, _ := blockOf(t, got[0]).Get("attempt"); a != int64(1) {
		t.Fatalf("attempt %v", a)
	}
	ack := build(t, "SqliteQueueAckSink", "sink", "path", path, "forward", true)
	if fw := plugintest.Process(t, ack, got...); len(fw) != 2 {
		t.Fatalf("ack forwarded %d", len(fw))
	}
	if metric(ack, "acked_total") != 2 || metric(ack, "queue_depth") != 1 {
		t.Fatalf("ack metrics %+v", ack.(plugin.Metrics).Metrics())
	}
	rest := plugintest.RunSource(t, src, 0)
	if len(rest) != 1 || metric(src, "emitted_total") != 3 {
		t.Fatalf("second run got %d", len(rest))
	}
	// Acked keys are remembered: the replay of p1 is not stored again.
	plugintest.Process(t, sink, p1)
	if metric(sink, "dedup_total") != 2 || metric(sink, "queue_depth") != 1 {
		t.Fatalf("replay after ack: %+v", sink.(plugin.Metrics).Metrics())
	}
}

func TestDrainWithoutAckReplays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path)
	plugintest.Process(t, sink, pk(1, nil), pk(2, nil))
	for run := 0; run < 3; run++ {
		// Each run is a new node, closed at the end, as a process exit.
		n := plugintest.Build(t, registry(), mod+"SqliteQueueSource", "source", packet.MapOf("path", path))
		plugintest.Start(t, n)
		got := plugintest.RunSource(t, n, 0)
		plugintest.Close(t, n)
		if len(got) != 2 {
			t.Fatalf("run %d replayed %d rows, want 2", run, len(got))
		}
		if a, _ := blockOf(t, got[0]).Get("attempt"); a != int64(1) {
			t.Fatalf("run %d: attempt %v (a clean stop is not a failed attempt)", run, a)
		}
	}
}

func TestDeleteOnEmitKeepsRowsNeverEmitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path)
	plugintest.Process(t, sink, pk(1, nil), pk(2, nil), pk(3, nil), pk(4, nil), pk(5, nil))
	n := plugintest.Build(t, registry(), mod+"SqliteQueueSource", "source", packet.MapOf("path", path, "delete_on_emit", true))
	plugintest.Start(t, n)
	got := plugintest.RunSource(t, n, 2) // --max-events 2
	plugintest.Close(t, n)
	if len(got) != 2 {
		t.Fatalf("emitted %d", len(got))
	}
	if d := metric(sink, "queue_depth"); d != 3 {
		t.Fatalf("depth %d: rows never emitted were deleted (upstream loses them)", d)
	}
	src := build(t, "SqliteQueueSource", "source", "path", path, "delete_on_emit", true)
	rest := plugintest.RunSource(t, src, 0)
	if len(rest) != 3 {
		t.Fatalf("next run got %d rows, want the 3 never emitted", len(rest))
	}
	if v, _ := rest[0].Payload.(*packet.Map).Get("value"); v != int64(3) {
		t.Fatalf("order: first row %v", v)
	}
}

func TestDrainReadsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path)
	var in []*packet.Packet
	for i := 0; i < 25; i++ {
		in = append(in, pk(i, nil))
	}
	plugintest.Process(t, sink, in...)
	src := build(t, "SqliteQueueSource", "source", "path", path, "limit", int64(10), "drain", true, "delete_on_emit", true)
	if got := plugintest.RunSource(t, src, 0); len(got) != 25 {
		t.Fatalf("drain got %d", len(got))
	}
}

func TestNackRetriesThenDeadLetters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path)
	plugintest.Process(t, sink, pk(1, nil))
	src := build(t, "SqliteQueueSource", "source", "path", path, "max_attempts", int64(2), "retry_backoff_sec", 0.01)
	got := plugintest.RunSource(t, src, 0)
	got[0].Copy().Nack(errors.New("http 400"))
	got[0].Nack(errors.New("again: one attempt per delivery")) // fan-out copies share the func
	if metric(src, "nacked_total") != 1 {
		t.Fatalf("nacked %d", metric(src, "nacked_total"))
	}
	var again []*packet.Packet
	deadline := time.Now().Add(5 * time.Second)
	for len(again) == 0 && time.Now().Before(deadline) {
		again = plugintest.RunSource(t, src, 0)
	}
	if len(again) != 1 {
		t.Fatal("nacked row never offered again")
	}
	if a, _ := blockOf(t, again[0]).Get("attempt"); a != int64(2) {
		t.Fatalf("attempt %v", a)
	}
	again[0].Nack(errors.New("http 400 again"))
	if metric(src, "dead_lettered_total") != 1 || metric(src, "queue_depth") != 0 {
		t.Fatalf("metrics %+v", src.(plugin.Metrics).Metrics())
	}
}

func TestFollowWakesOnEnqueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path)
	src := build(t, "SqliteQueueSource", "source", "path", path, "follow", true, "poll_interval_sec", int64(60))
	ctx, cancel := context.WithCancel(context.Background())
	c := &plugintest.Collector{}
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() {
		defer wg.Done()
		runErr = src.(plugin.Source).Run(ctx, c)
	}()
	plugintest.Process(t, sink, pk(1, nil))
	deadline := time.Now().Add(5 * time.Second)
	for len(c.Packets()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("follow source did not wake on an in-process enqueue (poll is 60s)")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatal(runErr)
	}
}

func TestAckSinkBadBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path, "forward", true)
	stored := plugintest.Process(t, sink, pk(1, nil), pk(2, nil))
	ack := build(t, "SqliteQueueAckSink", "sink", "path", path, "forward", true)
	withMeta := func(kv ...any) *packet.Packet { return pk(0, packet.MapOf("durable", packet.MapOf(kv...))) }
	in := []*packet.Packet{
		pk(0, nil),                          // no block
		pk(0, packet.MapOf("durable", "x")), // not a mapping
		withMeta("seq", true),               // bool is not an int (HEAD)
		withMeta("seq", int64(0)),           // non-positive
		withMeta("seq", int64(1), "queue_id", "another-queue"),
		withMeta("seq", int64(1), "path", filepath.Join(t.TempDir(), "other.sqlite3")), // a Python block for another file
		stored[0], // valid
		stored[0], // already acked: missing, still forwarded
		withMeta("queue", "sqlite", "path", path, "seq", int64(2), "node_id", "q"), // a Python block for this file
	}
	out := plugintest.Process(t, ack, in...)
	if metric(ack, "ack_invalid_total") != 4 || metric(ack, "ack_foreign_total") != 2 || metric(ack, "acked_total") != 2 || metric(ack, "ack_missing_total") != 1 {
		t.Fatalf("metrics %+v", ack.(plugin.Metrics).Metrics())
	}
	if len(out) != 3 {
		t.Fatalf("forwarded %d, want 3 (valid, missing, python block)", len(out))
	}
}

func TestSinkRejectsNonPortablePayload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path)
	bad := pk(1, nil)
	bad.Payload = struct{ Pixels []byte }{}
	var nacked error
	bad.Nack = func(err error) { nacked = err }
	plugintest.Process(t, sink, bad, pk(2, nil))
	// forward: false commits are pipelined; Close waits for them.
	if err := sink.(plugin.Closer).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if metric(sink, "rejected_total") != 1 || metric(sink, "queue_depth") != 1 || nacked == nil {
		t.Fatalf("metrics %+v nack %v", sink.(plugin.Metrics).Metrics(), nacked)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		class string
		cfg   *packet.Map
		want  string
	}{
		{"SqliteQueueSink", packet.MapOf(), "config.path: required key is missing"},
		{"SqliteQueueSink", packet.MapOf("path", "  "), "config.path: required"},
		{"SqliteQueueSink", packet.MapOf("path", "q", "synchronous", "off"), "config.synchronous: must be FULL or NORMAL"},
		{"SqliteQueueSink", packet.MapOf("path", "q", "overflow", "drop_new"), "config.overflow: must be one of"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "follow", true, "limit", int64(0)), "config.limit: must be > 0"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "lease_sec", int64(0)), "config.lease_sec"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "lease_sec", 1e10), "config.lease_sec: must be > 0 and <= 86400"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "poll_interval_sec", int64(4000)), "config.poll_interval_sec"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "max_in_flight", int64(0)), "config.max_in_flight: must be in 1..1000000"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "max_in_flight", int64(2_000_000)), "config.max_in_flight"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "retry_backoff_max_sec", 1e6), "config.retry_backoff_max_sec"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "retry_backoff_sec", int64(-1)), "config.retry_backoff_sec"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "dedup_window_sec", 1e12), "config.dedup_window_sec"},
		{"SqliteQueueSource", packet.MapOf("path", "q", "max_attempts", int64(0)), "config.max_attempts"},
		{"SqliteQueueAckSink", packet.MapOf("path", "q", "dedup_window_sec", 1e12), "config.dedup_window_sec"},
		{"SqliteQueueAckSink", packet.MapOf("meta_key", "d"), "config.path"},
	}
	for _, tc := range tests {
		_, err := plugintest.TryBuild(registry(), mod+tc.class, "sink", tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error %v, want %q", tc.class, tc.cfg.Keys(), err, tc.want)
		}
	}
}

func TestStartErrorNamesPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blocker", "q.sqlite3")
	if err := writeFile(filepath.Join(dir, "blocker"), "x"); err != nil {
		t.Fatal(err)
	}
	n := plugintest.Build(t, registry(), mod+"SqliteQueueSink", "sink", packet.MapOf("path", path))
	err := n.(plugin.Starter).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("start error %v must name %s", err, path)
	}
	plugintest.Close(t, n)
}

func TestPyPath(t *testing.T) {
	for in, want := range map[string]string{
		"outputs/queues/dev_demo.sqlite3": "outputs/queues/dev_demo.sqlite3",
		"./a//b/":                         "a/b",
		"/abs/./x":                        "/abs/x",
		"a/../b":                          "a/../b",
		".":                               ".",
	} {
		if got := pyPath(in); got != want {
			t.Errorf("pyPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPipelinedSinkAndAck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path)
	for b := 0; b < 20; b++ {
		var in []*packet.Packet
		for i := 0; i < 50; i++ {
			in = append(in, pk(b*50+i, nil))
		}
		plugintest.Process(t, sink, in...)
	}
	if err := sink.(plugin.Closer).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if metric(sink, "queue_depth") != 1000 || metric(sink, "enqueued_total") != 1000 {
		t.Fatalf("sink %+v", sink.(plugin.Metrics).Metrics())
	}
	src := build(t, "SqliteQueueSource", "source", "path", path, "limit", int64(1000))
	got := plugintest.RunSource(t, src, 0)
	ack := build(t, "SqliteQueueAckSink", "sink", "path", path)
	for i := 0; i < len(got); i += 100 {
		plugintest.Process(t, ack, got[i:i+100]...)
	}
	if err := ack.(plugin.Closer).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if metric(ack, "acked_total") != 1000 || metric(ack, "queue_depth") != 0 {
		t.Fatalf("ack %+v", ack.(plugin.Metrics).Metrics())
	}
}

// TestSinkAcksAfterCommit: the sink calls packet.Ack once the row is
// committed (pipelined or not, a duplicate too), never before.
// A pipelined commit acks as soon as it is done: an origin holding a
// request open must not wait for the next batch or the end of the run.
func TestPipelinedSinkAcksWithoutANextBatch(t *testing.T) {
	s := build(t, "SqliteQueueSink", "sink", "path", filepath.Join(t.TempDir(), "q.sqlite3"))
	t.Cleanup(func() { plugintest.Close(t, s) })
	var acked atomic.Int64
	batch := make([]*packet.Packet, 3)
	for i := range batch {
		batch[i] = pk(i, nil)
		batch[i].Ack = func() { acked.Add(1) }
	}
	if err := s.(plugin.BatchProcessor).ProcessBatch(context.Background(), batch, &plugintest.Collector{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "3 packets acked after their commit", func() bool { return acked.Load() == 3 })
}

func TestSinkAcksAfterCommit(t *testing.T) {
	for _, forward := range []bool{false, true} {
		dir := t.TempDir()
		s := build(t, "SqliteQueueSink", "sink", "path", filepath.Join(dir, "q.sqlite3"), "forward", forward)
		var acked sync.Map
		batch := make([]*packet.Packet, 5)
		for i := range batch {
			p := pk(i, nil)
			id := p.ID
			p.Ack = func() { acked.Store(id, true) }
			batch[i] = p
		}
		dup := pk(0, nil) // same idempotency key as batch[0]: stored already
		var dupAcked atomic.Bool
		dup.Ack = func() { dupAcked.Store(true) }
		if err := s.(plugin.BatchProcessor).ProcessBatch(context.Background(), append(batch, dup), &plugintest.Collector{}); err != nil {
			t.Fatal(err)
		}
		plugintest.Close(t, s) // waits for pipelined commits
		for _, p := range batch {
			if _, ok := acked.Load(p.ID); !ok {
				t.Errorf("forward=%v: packet %s committed but not acked", forward, p.ID)
			}
		}
		if !dupAcked.Load() {
			t.Errorf("forward=%v: a duplicate of a stored row was not acked", forward)
		}
	}
}
