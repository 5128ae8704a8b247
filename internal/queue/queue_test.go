package queue

import (
	"context"
	"errors"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// backends runs body against a file in t.TempDir() and against :memory:,
// as NATS runs its store tests on both stores.
func backends(t *testing.T, body func(t *testing.T, open func(Options) *Queue)) {
	t.Helper()
	for _, name := range []string{"file", "memory"} {
		t.Run(name, func(t *testing.T) {
			path := ":memory:"
			if name == "file" {
				path = filepath.Join(t.TempDir(), "sub", "q.sqlite3")
			}
			body(t, func(o Options) *Queue {
				t.Helper()
				if name == "memory" {
					o.Private = true
				}
				q, err := Open(path, o)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				t.Cleanup(func() { q.Close() })
				return q
			})
		})
	}
}

func rec(i int) Record {
	p := packet.New("demo", "src", packet.MapOf("i", int64(i)), "", nil)
	r, err := RecordOf(p, "")
	if err != nil {
		panic(err)
	}
	return r
}

func recKey(i int, key string) Record {
	r := rec(i)
	r.Key = key
	return r
}

func mustEnqueue(t testing.TB, q *Queue, rs ...Record) []Result {
	t.Helper()
	res, err := q.EnqueueBatch(context.Background(), rs)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return res
}

func mustLease(t testing.TB, q *Queue, n int, d time.Duration) []Message {
	t.Helper()
	ms, err := q.Lease(context.Background(), n, d)
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	return ms
}

func seqsOf(ms []Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func refs(seqs ...int64) []Ref {
	var out []Ref
	for _, s := range seqs {
		out = append(out, Ref{Seq: s})
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.

func TestEnqueueLeaseAck(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		q := open(Options{})
		ctx := context.Background()
		res := mustEnqueue(t, q, rec(1), rec(2), rec(3))
		if res[0].Seq != 1 || res[2].Seq != 3 || res[1].Duplicate {
			t.Fatalf("results %+v", res)
		}
		if d := q.Depth(); d != 3 {
			t.Fatalf("depth %d, want 3", d)
		}
		a := mustLease(t, q, 2, time.Minute)
		if got := seqsOf(a); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("first lease %v", got)
		}
		if a[0].Attempt != 1 {
			t.Fatalf("attempt %d", a[0].Attempt)
		}
		if v, _ := a[0].Packet.Payload.(*packet.Map).Get("i"); v != int64(1) {
			t.Fatalf("payload %v", a[0].Packet.Payload)
		}
		b := mustLease(t, q, 5, time.Minute)
		if got := seqsOf(b); !slices.Equal(got, []int64{3}) {
			t.Fatalf("second lease %v (leased rows must be hidden)", got)
		}
		st, err := q.Ack(ctx, refs(1, 2, 99, 0)...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st, []AckStatus{Acked, Acked, Missing, Invalid}) {
			t.Fatalf("ack statuses %v", st)
		}
		if st, _ := q.Ack(ctx, Ref{Seq: 3, QueueID: "other-queue"}); st[0] != Foreign {
			t.Fatalf("foreign ack: %v", st)
		}
		if st, _ := q.Ack(ctx, Ref{Seq: 3, QueueID: q.ID()}); st[0] != Acked {
			t.Fatalf("own-id ack: %v", st)
		}
		if d := q.Depth(); d != 0 {
			t.Fatalf("depth %d after acks", d)
		}
		s, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Rows != 0 || s.DedupKeys != 3 || s.QueueID == "" || s.SchemaVersion != SchemaVersion {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestKey(t *testing.T) {
	id := "11111111-1111-4111-8111-111111111111"
	tests := []struct {
		name     string
		explicit string
		meta     *packet.Map
		want     string
		err      error
	}{
		{"packet id", "", nil, id, nil},
		{"explicit wins", " k1 ", packet.MapOf("idempotency_key", "m"), "k1", nil},
		{"meta key", "", packet.MapOf("idempotency_key", "m1"), "m1", nil},
		{"meta empty falls through", "", packet.MapOf("idempotency_key", ""), id, nil},
		{"meta zero falls through", "", packet.MapOf("idempotency_key", int64(0)), id, nil},
		{"meta int as str", "", packet.MapOf("idempotency_key", int64(42)), "42", nil},
		{"meta bool as Python str", "", packet.MapOf("idempotency_key", true), "True", nil},
		{"whitespace is an error", "", packet.MapOf("idempotency_key", "   "), "", ErrEmptyKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &packet.Packet{ID: id, Kind: "k", SourceID: "s", Meta: tc.meta}
			got, err := Key(p, tc.explicit)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Key = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestIdempotencyAndDedupWindow(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		ctx := context.Background()
		q := open(Options{})
		r1 := mustEnqueue(t, q, recKey(1, "k"))[0]
		r2 := mustEnqueue(t, q, recKey(1, "k"))[0]
		if r2.Seq != r1.Seq || !r2.Duplicate || r2.Conflict {
			t.Fatalf("same payload dup: %+v vs %+v", r2, r1)
		}
		r3 := mustEnqueue(t, q, recKey(2, "k"))[0]
		if !r3.Duplicate || !r3.Conflict || r3.Seq != r1.Seq {
			t.Fatalf("conflicting dup: %+v", r3)
		}
		// Duplicates inside one batch collapse too.
		rb := mustEnqueue(t, q, recKey(5, "b"), recKey(5, "b"))
		if rb[0].Duplicate || !rb[1].Duplicate || rb[1].Seq != rb[0].Seq {
			t.Fatalf("batch dup: %+v", rb)
		}
		if _, err := q.Ack(ctx, refs(r1.Seq)...); err != nil {
			t.Fatal(err)
		}
		// Upstream forgets the key with the row; we remember it.
		r4 := mustEnqueue(t, q, recKey(1, "k"))[0]
		if !r4.Duplicate || r4.Seq != r1.Seq {
			t.Fatalf("replay after ack within window was stored again: %+v", r4)
		}
		c := q.Counters()
		if c.Enqueued != 2 || c.Duplicates != 4 || c.Conflicts != 1 {
			t.Fatalf("counters %+v", c)
		}
	})
	t.Run("window expiry", func(t *testing.T) {
		// Wide enough that a loaded CI machine still re-enqueues inside it.
		q, err := Open(filepath.Join(t.TempDir(), "q"), Options{DedupWindow: 1500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		ctx := context.Background()
		r := mustEnqueue(t, q, recKey(1, "k"))[0]
		q.Ack(ctx, refs(r.Seq)...)
		if !mustEnqueue(t, q, recKey(1, "k"))[0].Duplicate {
			t.Fatal("inside window: stored again")
		}
		poll.Until(t, 15*time.Second, "dedup window to pass", func() bool {
			res := mustEnqueue(t, q, recKey(1, "k"))[0]
			return !res.Duplicate
		})
	})
	t.Run("window disabled", func(t *testing.T) {
		q, err := Open(":memory:", Options{DedupWindow: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		r := mustEnqueue(t, q, recKey(1, "k"))[0]
		q.Ack(context.Background(), refs(r.Seq)...)
		if mustEnqueue(t, q, recKey(1, "k"))[0].Duplicate {
			t.Fatal("key remembered with the window disabled")
		}
	})
}

func TestGroupCommit(t *testing.T) {
	q, err := Open(filepath.Join(t.TempDir(), "q.sqlite3"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const writers, each = 32, 20
	before := q.Commits()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res, err := q.Enqueue(context.Background(), rec(w*1000+i))
				if err != nil {
					errs <- err
					return
				}
				if res.Seq <= 0 {
					errs <- fmt.Errorf("seq %d", res.Seq)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	commits := q.Commits() - before
	if q.Depth() != writers*each {
		t.Fatalf("depth %d", q.Depth())
	}
	// Concurrent single enqueues must share commits.
	if commits >= writers*each {
		t.Fatalf("%d commits for %d enqueues: no group commit", commits, writers*each)
	}
	t.Logf("%d enqueues in %d commits", writers*each, commits)
}

func TestSharedHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	a, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	if a.c != b.c || a.ID() != b.ID() {
		t.Fatal("handles on one file in one process should share a core")
	}
	mustEnqueue(t, a, rec(1))
	if got := mustLease(t, b, 10, time.Minute); len(got) != 1 {
		t.Fatalf("b leased %d", len(got))
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// b still works after a closed.
	mustEnqueue(t, b, rec(2))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := b.Enqueue(context.Background(), rec(3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
}
