package queue

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// crash drops a handle's connection without releasing its leases, as a
// killed process would.
func crash(t *testing.T, q *Queue) {
	t.Helper()
	if !q.opts.Private {
		t.Fatal("crash needs a Private handle")
	}
	q.closed.Store(true)
	q.stopRenew()
	q.ownMu.Lock()
	q.lock.release(false) // the OS drops a dead process's lock; its file stays
	q.lock = nil
	q.ownMu.Unlock()
	if err := q.c.close(); err != nil {
		t.Fatal(err)
	}
}

// handed marks rows emitted and waits until that is committed.
func handed(t *testing.T, q *Queue, ms []Message) {
	t.Helper()
	q.MarkHanded(ms)
	if err := q.do(context.Background(), true, func(*txn) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestDeadOwnerRowsReleasedAtOnce: rows a crashed reader held come back
// at once (not after the lease), charged an attempt only when the reader
// had emitted them.
func TestDeadOwnerRowsReleasedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	a, err := Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, a, rec(1), rec(2))
	got := mustLease(t, a, 10, time.Hour)
	if len(got) != 2 {
		t.Fatalf("leased %d", len(got))
	}
	handed(t, a, got[:1]) // row 1 emitted, row 2 only read ahead
	crash(t, a)

	b, err := Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got = mustLease(t, b, 10, time.Minute)
	if !slices.Equal(seqsOf(got), []int64{1, 2}) || got[0].Attempt != 2 || got[1].Attempt != 1 {
		t.Fatalf("after the crash got %v, attempts %d %d; want [1 2] at once, attempts 2 1", seqsOf(got), got[0].Attempt, got[1].Attempt)
	}
	if rep := b.StartReport(); rep.Charged != 1 || rep.Released != 1 {
		t.Fatalf("start report %+v", rep)
	}
	ents, _ := b.Peek(context.Background(), 0, 10)
	if !strings.Contains(ents[0].LastError, "died while delivering") || ents[1].LastError != "" {
		t.Fatalf("last_error %q %q", ents[0].LastError, ents[1].LastError)
	}
}

// TestLiveOwnerKeepsRows: a live reader's rows are not taken, however
// short its lease (it renews them), and a second handle under the same
// consumer name is refused.
func TestLiveOwnerKeepsRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	a, err := Open(path, Options{Private: true, Consumer: "fwd"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mustEnqueue(t, a, rec(1), rec(2))
	ms := mustLease(t, a, 10, 60*time.Millisecond)
	handed(t, a, ms)
	if _, err := Open(path, Options{Private: true, Consumer: "fwd"}); !errors.Is(err, ErrConsumerBusy) || !strings.Contains(err.Error(), `"fwd"`) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second open of a live consumer: %v", err)
	}
	b, err := Open(path, Options{Private: true, Consumer: "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if rep := b.StartReport(); rep.ElsewhereRows() != 2 || rep.Elsewhere[0].Owner != "fwd" {
		ow, _ := b.Owners(context.Background())
		t.Logf("owners %+v now %s", ow, time.Now().UTC())
		t.Fatalf("start report %+v", rep)
	}
	// Several lease lengths pass: a renews, b never gets the rows.
	deadline := time.Now().Add(400 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := mustLease(t, b, 10, time.Minute); len(got) != 0 {
			t.Fatalf("rows of a live reader handed to another: %v", seqsOf(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.InFlight() != 2 {
		t.Fatalf("in flight %d", a.InFlight())
	}
	a.Ack(context.Background(), refs(ms[0].Seq)...)
	if a.InFlight() != 1 {
		t.Fatalf("in flight after ack %d", a.InFlight())
	}
	owners, err := b.Owners(context.Background())
	if err != nil || len(owners) != 1 || owners[0].Owner != "fwd" || !owners[0].Alive || owners[0].Rows != 1 {
		t.Fatalf("owners %+v %v", owners, err)
	}
}

// TestPermanentNackDeadLetters: a nack marked packet.Permanent moves the
// row to the dead letters at its first attempt.
func TestPermanentNackDeadLetters(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		ctx := context.Background()
		var buried []string
		q := open(Options{MaxAttempts: 5, OnDead: func(seq int64, reason string) { buried = append(buried, reason) }})
		mustEnqueue(t, q, rec(1))
		ms := mustLease(t, q, 1, time.Minute)
		st, err := q.Nack(ctx, Ref{Seq: ms[0].Seq}, packet.Permanent(errors.New("receiver said 422")))
		if err != nil || st != Dead {
			t.Fatalf("nack: %v %v", st, err)
		}
		d, _ := q.Dead(ctx, 0, 10)
		if len(d) != 1 || !strings.Contains(d[0].LastError, "422") || d[0].Attempts != 1 {
			t.Fatalf("dead %+v", d)
		}
		if q.Counters().DeadLettered != 1 || len(buried) != 1 || q.InFlight() != 0 {
			t.Fatalf("counters %+v, OnDead %v, in flight %d", q.Counters(), buried, q.InFlight())
		}
	})
}

// TestDeadLetterReasonIsMasked: a reason is stored and printed by
// `queue dead`, so a URL's secrets in it never reach the file.
func TestDeadLetterReasonIsMasked(t *testing.T) {
	q, err := Open(filepath.Join(t.TempDir(), "q.sqlite3"), Options{MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	mustEnqueue(t, q, rec(1))
	ms := mustLease(t, q, 1, time.Minute)
	reason := errors.New(`POST https://ops:s3cret@api.example/ingest?token=abc123: HTTP 400`)
	if _, err := q.Nack(ctx, Ref{Seq: ms[0].Seq}, packet.Permanent(reason)); err != nil {
		t.Fatal(err)
	}
	d, _ := q.Dead(ctx, 0, 10)
	if len(d) != 1 {
		t.Fatalf("dead %+v", d)
	}
	if strings.Contains(d[0].LastError, "s3cret") || strings.Contains(d[0].LastError, "abc123") || !strings.Contains(d[0].LastError, "HTTP 400") {
		t.Fatalf("stored reason %q: secrets must be masked, the status kept", d[0].LastError)
	}
}

func TestCloseReleasesLeasesWithoutAttempt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	a, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, a, rec(1))
	mustLease(t, a, 1, time.Hour)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Upstream's drain graph without ack replays the rows on every run:
	// a clean stop must give them back at once, not after the lease.
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := mustLease(t, b, 1, time.Hour)
	if len(got) != 1 || got[0].Attempt != 1 {
		t.Fatalf("after clean close: %v", got)
	}
}

func TestNackBackoffThenDeadLetter(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		ctx := context.Background()
		q := open(Options{MaxAttempts: 3, RetryBackoff: 20 * time.Millisecond, RetryBackoffMax: 40 * time.Millisecond})
		mustEnqueue(t, q, recKey(1, "poison"), recKey(2, "good"))
		for attempt := 1; attempt <= 3; attempt++ {
			var m []Message
			poll.Until(t, 5*time.Second, "retry after backoff", func() bool {
				m = mustLease(t, q, 1, time.Minute)
				if len(m) == 1 && m[0].Key == "good" {
					q.Ack(ctx, Ref{Seq: m[0].Seq})
					m = nil
				}
				return len(m) == 1
			})
			if m[0].Attempt != attempt {
				t.Fatalf("attempt %d, want %d", m[0].Attempt, attempt)
			}
			st, err := q.Nack(ctx, Ref{Seq: m[0].Seq}, fmt.Errorf("receiver said 400 (try %d)", attempt))
			if err != nil {
				t.Fatal(err)
			}
			want := Retrying
			if attempt == 3 {
				want = Dead
			} else if got := mustLease(t, q, 2, time.Minute); len(got) > 0 && got[0].Key == "poison" {
				t.Fatalf("nacked row offered again before its backoff: %v", seqsOf(got))
			} else if len(got) > 0 {
				q.Ack(ctx, Ref{Seq: got[0].Seq})
			}
			if st != want {
				t.Fatalf("nack %d: %v, want %v", attempt, st, want)
			}
		}
		dead, err := q.Dead(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].Key != "poison" || dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "400 (try 3)") {
			t.Fatalf("dead letters %+v", dead)
		}
		if q.Depth() != 0 {
			t.Fatalf("depth %d", q.Depth())
		}
		var progress []int64
		n, skipped, err := q.Requeue(ctx, nil, func(done, total int64) { progress = append(progress, done, total) })
		if err != nil || n != 1 || skipped != 0 {
			t.Fatalf("requeue: %d %d %v", n, skipped, err)
		}
		if !slices.Equal(progress, []int64{1, 1}) {
			t.Fatalf("progress %v", progress)
		}
		got := mustLease(t, q, 10, time.Minute)
		if len(got) != 1 || got[0].Key != "poison" || got[0].Attempt != 1 || got[0].Seq <= dead[0].Seq {
			t.Fatalf("requeued row: %+v", got)
		}
	})
}

func TestPoisonRowDoesNotBlockDrain(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		q := open(Options{})
		mustEnqueue(t, q, rec(1), rec(2), rec(3))
		// Corrupt row 2 the way a foreign writer could.
		err := q.do(context.Background(), true, func(tx *txn) error {
			_, err := tx.exec(`UPDATE packets SET payload_json = '{"broken": ' WHERE seq = 2`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		got := mustLease(t, q, 3, time.Minute)
		if !slices.Equal(seqsOf(got), []int64{1, 3}) {
			t.Fatalf("leased %v, want [1 3]", seqsOf(got))
		}
		dead, _ := q.Dead(context.Background(), 0, 10)
		if len(dead) != 1 || dead[0].Seq != 2 || !strings.Contains(dead[0].LastError, "undecodable row: payload_json") {
			t.Fatalf("dead %+v", dead)
		}
	})
}

func TestCrashLoopingRowEndsDead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	opts := Options{Private: true, MaxAttempts: 2}
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, rec(1))
	for i := 0; i < 2; i++ {
		var ms []Message
		poll.Until(t, 5*time.Second, "row offered", func() bool { ms = mustLease(t, q, 1, time.Millisecond); return len(ms) == 1 })
		handed(t, q, ms)
		crash(t, q)
		if q, err = Open(path, opts); err != nil {
			t.Fatal(err)
		}
	}
	defer q.Close()
	// The second death while delivering it is the second failed attempt:
	// the reopen parks the row instead of handing it out.
	poll.Until(t, 5*time.Second, "row to be dead-lettered", func() bool {
		if got := mustLease(t, q, 1, time.Minute); len(got) != 0 {
			t.Fatalf("row that crashed its reader twice delivered again: %v", seqsOf(got))
		}
		d, _ := q.Dead(context.Background(), 0, 1)
		return len(d) == 1
	})
	dead, _ := q.Dead(context.Background(), 0, 1)
	if len(dead) != 1 || !strings.Contains(dead[0].LastError, "died while delivering") {
		t.Fatalf("dead %+v", dead)
	}
}

// TestTwoReadersNeverShare leases concurrently from handles with their own
// connections (as two processes would) and from one shared handle.
func TestTwoReadersNeverShare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const total = 600
	var recs []Record
	for i := 0; i < total; i++ {
		recs = append(recs, rec(i))
	}
	mustEnqueue(t, w, recs...)
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := Open(path, Options{Private: r%2 == 0})
			if err != nil {
				t.Error(err)
				return
			}
			defer h.Close()
			for {
				ms, err := h.Lease(context.Background(), 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ms) == 0 {
					return
				}
				mu.Lock()
				for _, m := range ms {
					seen[m.Seq]++
				}
				mu.Unlock()
				var rs []Ref
				for _, m := range ms {
					rs = append(rs, Ref{Seq: m.Seq})
				}
				if _, err := h.Ack(context.Background(), rs...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != total {
		t.Fatalf("%d distinct rows delivered, want %d", len(seen), total)
	}
	for s, n := range seen {
		if n != 1 {
			t.Fatalf("row %d delivered %d times", s, n)
		}
	}
}

// TestHelperLeaseProcess is the child of TestTwoProcessesNeverShare.
func TestHelperLeaseProcess(t *testing.T) {
	path := os.Getenv("QUEUE_TEST_LEASE_PATH")
	if path == "" {
		t.Skip("helper process only")
	}
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for {
		ms, err := q.Lease(context.Background(), 5, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			return
		}
		var rs []Ref
		for _, m := range ms {
			fmt.Fprintf(out, "SEQ %d\n", m.Seq)
			rs = append(rs, Ref{Seq: m.Seq})
		}
		if _, err := q.Ack(context.Background(), rs...); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTwoProcessesNeverShare(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const total = 400
	var recs []Record
	for i := 0; i < total; i++ {
		recs = append(recs, rec(i))
	}
	mustEnqueue(t, w, recs...)
	w.Close()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLeaseProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "QUEUE_TEST_LEASE_PATH="+path)
		var b strings.Builder
		cmd.Stdout = &b
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, &b)
	}
	seen := map[int64]int{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		for _, line := range strings.Split(outs[i].String(), "\n") {
			if s, ok := strings.CutPrefix(line, "SEQ "); ok {
				n, _ := strconv.ParseInt(s, 10, 64)
				seen[n]++
			}
		}
	}
	if len(seen) != total {
		t.Fatalf("%d distinct rows delivered, want %d", len(seen), total)
	}
	for s, n := range seen {
		if n != 1 {
			t.Fatalf("row %d delivered %d times across processes", s, n)
		}
	}
	// Both rows tables must be empty and the file sound.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM packets`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows left %d %v", n, err)
	}
	_ = errors.New
}

// TestAckCompaction: acked rows vanish for readers at once and from the
// packets table (which the Python project reads) when the writer is idle
// or closes.
func TestAckCompaction(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		ctx := context.Background()
		q := open(Options{})
		r1 := rec(1)
		mustEnqueue(t, q, r1, rec(2), rec(3))
		ms := mustLease(t, q, 3, time.Minute)
		q.Release(ctx, ms[2].Seq)
		if st, _ := q.Ack(ctx, refs(ms[0].Seq, ms[1].Seq, ms[0].Seq)...); st[2] != Missing {
			t.Fatalf("second ack of one row: %v", st)
		}
		if got := mustLease(t, q, 10, time.Minute); !slices.Equal(seqsOf(got), []int64{3}) {
			t.Fatalf("after ack leased %v", seqsOf(got))
		}
		if st, _ := q.Nack(ctx, Ref{Seq: ms[0].Seq}, nil); st != Missing {
			t.Fatalf("nack of an acked row: %v", st)
		}
		raw := func() (n int) {
			q.do(ctx, false, func(tx *txn) error { return tx.queryRow(`SELECT COUNT(*) FROM packets`).Scan(&n) })
			return
		}
		if s, _ := q.Stats(ctx); s.Rows != 1 || s.AckedPending != 2 || s.DedupKeys != 2 {
			t.Fatalf("stats before compaction %+v", s)
		}
		q.Ack(ctx, refs(3)...)
		// All rows acked: compaction (a cheap truncate) runs as soon as the
		// writer is idle, not compactAfter later.
		poll.Until(t, compactAfter/2, "idle compaction", func() bool { return raw() == 0 })
		s, _ := q.Stats(ctx)
		if s.Rows != 0 || s.AckedPending != 0 || s.DedupKeys != 3 {
			t.Fatalf("stats %+v", s)
		}
		if !mustEnqueue(t, q, r1)[0].Duplicate {
			t.Fatal("key of a compacted row forgotten")
		}
	})
}

// TestDeathChargesOnlyTheOldestEmitted: a reader that dies with a full
// inbox is charged for the rows it was delivering (the oldest emitted),
// not for the rows queued behind them.
func TestDeathChargesOnlyTheOldestEmitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	a, err := Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := 0; i < 300; i++ {
		recs = append(recs, rec(i))
	}
	mustEnqueue(t, a, recs...)
	ms := mustLease(t, a, 300, time.Hour)
	handed(t, a, ms[:200]) // 200 emitted, 100 read ahead
	crash(t, a)
	b, err := Open(path, Options{Private: true, Consumer: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if rep := b.StartReport(); rep.Charged != deathCharge || rep.Released != 300-deathCharge {
		t.Fatalf("start report %+v, want %d charged", rep, deathCharge)
	}
	got := mustLease(t, b, 300, time.Minute)
	for i, m := range got {
		want := 1
		if i < deathCharge {
			want = 2
		}
		if m.Attempt != want {
			t.Fatalf("row %d (seq %d): attempt %d, want %d", i, m.Seq, m.Attempt, want)
		}
	}
}

// TestLoadSettlesGoneRows: a leased row deleted meanwhile (another
// process purged it) does not keep a window slot.
func TestLoadSettlesGoneRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	mustEnqueue(t, q, rec(1), rec(2), rec(3))
	ms, err := q.LeaseUnloaded(context.Background(), 3, time.Minute)
	if err != nil || len(ms) != 3 || q.InFlight() != 3 {
		t.Fatalf("lease %v %v in flight %d", ms, err, q.InFlight())
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM packets WHERE seq IN (2, 3)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	got, err := q.Load(context.Background(), ms)
	if err != nil || len(got) != 1 || q.InFlight() != 1 {
		t.Fatalf("load %v %v, in flight %d, want 1 row and 1 in flight", seqsOf(got), err, q.InFlight())
	}
}
