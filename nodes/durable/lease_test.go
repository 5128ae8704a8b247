package durable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// ackingEmitter acks every packet through an ack sink, checking on each
// emit that the source holds no more than max rows.
type ackingEmitter struct {
	t       *testing.T
	src     *source
	ack     any
	max     int64
	n       int
	maxSeen int64
}

func (e *ackingEmitter) Emit(p *packet.Packet) error {
	if f := e.src.q.InFlight(); f > e.maxSeen {
		e.maxSeen = f
	}
	e.n++
	return e.ack.(plugin.BatchProcessor).ProcessBatch(context.Background(), []*packet.Packet{p}, &plugintest.Collector{})
}
func (e *ackingEmitter) EmitPort(_ string, p *packet.Packet) error { return e.Emit(p) }

func fill(t *testing.T, path string, n int) {
	t.Helper()
	sink := build(t, "SqliteQueueSink", "sink", "path", path, "forward", true)
	var in []*packet.Packet
	for i := 0; i < n; i++ {
		in = append(in, pk(i, nil))
	}
	plugintest.Process(t, sink, in...)
}

// TestSourceLeasesAWindow: with an ack sink on the file, the source never
// holds more than max_in_flight rows, whatever limit says, and still
// delivers everything.
func TestSourceLeasesAWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	fill(t, path, 60)
	ack := build(t, "SqliteQueueAckSink", "sink", "path", path)
	src := build(t, "SqliteQueueSource", "source", "path", path, "limit", int64(1000), "drain", true, "max_in_flight", int64(7))
	e := &ackingEmitter{t: t, src: src.(*source), ack: ack, max: 7}
	if err := src.(plugin.Source).Run(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if e.n != 60 || e.maxSeen > 7 || e.maxSeen == 0 {
		t.Fatalf("emitted %d, held at most %d rows (window 7)", e.n, e.maxSeen)
	}
}

// TestSourceWithoutAckIsNotWindowed: a replay drain (no ack sink) would
// never free a window; it leases its batch as before.
func TestSourceWithoutAckIsNotWindowed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	fill(t, path, 30)
	src := build(t, "SqliteQueueSource", "source", "path", path, "limit", int64(100), "max_in_flight", int64(5))
	if got := plugintest.RunSource(t, src, 0); len(got) != 30 {
		t.Fatalf("emitted %d of 30", len(got))
	}
}

func TestSecondSourceSameConsumerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	build(t, "SqliteQueueSource", "source", "path", path)
	n := plugintest.Build(t, registry(), mod+"SqliteQueueSource", "source", packet.MapOf("path", path))
	err := n.(plugin.Starter).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "consumer") || !strings.Contains(err.Error(), "pid") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second source under one consumer name: %v", err)
	}
	plugintest.Close(t, n)
	// Another name reads the same file.
	build(t, "SqliteQueueSource", "source", "path", path, "consumer", "second-reader")
}

// TestSinkBlockedStopsOnCancel: a full bounded sink under overflow: block
// returns when its context is cancelled (the runtime's --stop-timeout),
// nacking exactly the packets it did not store.
func TestSinkBlockedStopsOnCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	sink := build(t, "SqliteQueueSink", "sink", "path", path, "max_rows", int64(2))
	plugintest.Process(t, sink, pk(1, nil), pk(2, nil))
	var nacks atomic.Int32
	var in []*packet.Packet
	for i := 3; i < 6; i++ {
		p := pk(i, nil)
		p.Nack = func(error) { nacks.Add(1) }
		in = append(in, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sink.(plugin.BatchProcessor).ProcessBatch(ctx, in, &plugintest.Collector{}) }()
	select {
	case err := <-done:
		t.Fatalf("a full queue under block returned at once: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ProcessBatch after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ProcessBatch still blocked 10s after its context was cancelled")
	}
	if nacks.Load() != 3 || metric(sink, "queue_depth") != 2 || metric(sink, "not_stored_total") != 3 {
		t.Fatalf("nacks %d, metrics %+v", nacks.Load(), sink.(plugin.Metrics).Metrics())
	}
}

// TestUndecodableRowIsCountedAndDegrades: a row whose JSON does not decode
// goes to the dead letters, counted in dead_lettered_total (a Loss).
func TestUndecodableRowIsCountedAndDegrades(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	fill(t, path, 2)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE packets SET payload_json = '{broken' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	src := build(t, "SqliteQueueSource", "source", "path", path)
	if got := plugintest.RunSource(t, src, 0); len(got) != 1 {
		t.Fatalf("emitted %d, want 1", len(got))
	}
	if metric(src, "dead_lettered_total") != 1 || plugintest.Lost(t, registry(), mod+"SqliteQueueSource", src) != 1 {
		t.Fatalf("metrics %+v: want one dead letter, counted as a loss", src.(plugin.Metrics).Metrics())
	}
}

// TestPermanentNackGoesStraightToDeadLetters: packet.Permanent skips the
// remaining attempts.
func TestPermanentNackGoesStraightToDeadLetters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	fill(t, path, 1)
	src := build(t, "SqliteQueueSource", "source", "path", path, "max_attempts", int64(20))
	got := plugintest.RunSource(t, src, 0)
	got[0].Nack(packet.Permanent(errors.New("http 422: bad event")))
	if metric(src, "dead_lettered_total") != 1 || metric(src, "queue_depth") != 0 {
		t.Fatalf("metrics %+v", src.(plugin.Metrics).Metrics())
	}
}

// TestDiskFullCountsEveryLostPacket: when the pipelined sink's commits
// fail (disk full), the error counts every packet of every failed
// commit, each of them is nacked, and not_stored_total agrees.
func TestDiskFullCountsEveryLostPacket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	n := plugintest.Build(t, registry(), mod+"SqliteQueueSink", "sink", packet.MapOf("path", path))
	s := n.(*sink)
	q, err := queue.Open(path, queue.Options{MaxPageCount: 40, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	s.q, s.pipelined = q, true
	var nacked atomic.Int64
	var runErr error
	sent := 0
	for b := 0; b < 200 && runErr == nil; b++ {
		var batch []*packet.Packet
		for i := 0; i < 50; i++ {
			p := pk(sent, packet.MapOf("pad", strings.Repeat("x", 400)))
			p.Nack = func(error) { nacked.Add(1) }
			batch = append(batch, p)
			sent++
		}
		runErr = s.ProcessBatch(context.Background(), batch, &plugintest.Collector{})
	}
	if runErr == nil {
		runErr = s.settle(true)
	}
	if runErr == nil || !errors.Is(runErr, queue.ErrFull) {
		t.Fatalf("want a disk-full error, got %v", runErr)
	}
	lost := metric(s, "not_stored_total")
	if lost == 0 || lost != nacked.Load() || !strings.Contains(runErr.Error(), fmt.Sprintf("%d packets were not stored", lost)) {
		t.Fatalf("error %q, not_stored_total %d, nacked %d", runErr, lost, nacked.Load())
	}
	if stored := metric(s, "enqueued_total"); stored+lost != int64(sent) {
		t.Fatalf("enqueued %d + not stored %d != sent %d", stored, lost, sent)
	}
	t.Logf("%d sent, %d not stored: %v", sent, lost, runErr)
	q.Close()
}
