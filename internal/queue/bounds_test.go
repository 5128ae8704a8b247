package queue

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBoundBlockWaitsForRoom(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		q := open(Options{MaxRows: 2})
		ctx := context.Background()
		mustEnqueue(t, q, rec(1), rec(2))
		done := make(chan Result, 1)
		go func() {
			r, err := q.Enqueue(ctx, rec(3))
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		select {
		case r := <-done:
			t.Fatalf("enqueue into a full queue returned at once: %+v", r)
		case <-time.After(50 * time.Millisecond): // proving absence needs a wait
		}
		m := mustLease(t, q, 1, time.Minute)
		q.Ack(ctx, Ref{Seq: m[0].Seq})
		select {
		case r := <-done:
			if r.Seq != 3 {
				t.Fatalf("seq %d", r.Seq)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("enqueue still blocked after an ack made room")
		}

		// Cancelled while waiting: error, and the row is not stored.
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := q.Enqueue(cctx, rec(4))
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond) // let it reach the wait; the outcome is the same either way
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled enqueue: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("cancel did not end a blocked enqueue")
		}
		if d := q.Depth(); d != 2 {
			t.Fatalf("depth %d after cancelled enqueue", d)
		}
	})
}

func TestBoundBatchLargerThanMaxRows(t *testing.T) {
	q, err := Open(":memory:", Options{MaxRows: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	done := make(chan []Result, 1)
	go func() {
		res, err := q.EnqueueBatch(ctx, []Record{rec(1), rec(2), rec(3), rec(4), rec(5)})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	acked := 0
	for acked < 2 {
		for _, m := range mustLease(t, q, 10, time.Minute) {
			q.Ack(ctx, Ref{Seq: m.Seq})
			acked++
		}
	}
	select {
	case res := <-done:
		if res[4].Seq != 5 {
			t.Fatalf("results %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("batch never completed")
	}
}

func TestBoundDropOldest(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		q := open(Options{MaxRows: 3, Overflow: OverflowDropOldest})
		for i := 1; i <= 5; i++ {
			mustEnqueue(t, q, rec(i))
		}
		if q.Counters().Dropped != 2 || q.Depth() != 3 {
			t.Fatalf("dropped %d depth %d", q.Counters().Dropped, q.Depth())
		}
		ents, _ := q.Peek(context.Background(), 0, 10)
		if len(ents) != 3 || ents[0].Seq != 3 {
			t.Fatalf("left %+v", ents)
		}
	})
}

func TestBoundMaxBytes(t *testing.T) {
	q, err := Open(":memory:", Options{MaxBytes: 600, Overflow: OverflowDropOldest})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := 0; i < 20; i++ {
		mustEnqueue(t, q, rec(i))
	}
	s, _ := q.Stats(context.Background())
	if s.Bytes > 600 || s.Rows == 0 || q.Counters().Dropped == 0 {
		t.Fatalf("stats %+v dropped %d", s, q.Counters().Dropped)
	}
	big := rec(99)
	big.Payload = `"` + strings.Repeat("x", 700) + `"`
	if _, err := q.Enqueue(context.Background(), big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize record: %v", err)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sqliteWith := func(name string, stmts ...string) string {
		p := filepath.Join(dir, name)
		db, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		return p
	}
	newer := filepath.Join(dir, "newer.sqlite3")
	q, err := Open(newer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.do(context.Background(), true, func(tx *txn) error {
		_, err := tx.exec(`UPDATE schnitzel_queue_meta SET value = '99' WHERE key = 'schema_version'`)
		return err
	})
	q.Close()
	parentFile := write("plainfile", []byte("x"))

	tests := []struct {
		name string
		path string
		opts Options
		kind error
		msg  string
	}{
		{"corrupt", write("corrupt.sqlite3", []byte(strings.Repeat("this is not sqlite ", 300))), Options{}, ErrCorrupt, ""},
		{"not a queue", sqliteWith("other.sqlite3", "CREATE TABLE users (id INTEGER)", "INSERT INTO users VALUES (1)"), Options{}, ErrNotQueue, "tables: users"},
		{"packets of another shape", sqliteWith("shape.sqlite3", "CREATE TABLE packets (id INTEGER)"), Options{}, ErrNotQueue, "lacks column seq"},
		{"newer schema", newer, Options{}, ErrNewerSchema, "schema version 99"},
		{"missing with MustExist", filepath.Join(dir, "nope.sqlite3"), Options{MustExist: true}, ErrNotExist, ""},
		{"parent is a file", filepath.Join(parentFile, "q.sqlite3"), Options{}, nil, "not a directory"},
		{"directory", dir, Options{}, nil, "is a directory"},
		{"bad synchronous", filepath.Join(dir, "s.sqlite3"), Options{Synchronous: "OFF"}, nil, "synchronous must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before [32]byte
			st, statErr := os.Stat(tc.path)
			if statErr == nil && !st.IsDir() {
				before = fileHash(t, tc.path)
			}
			q, err := Open(tc.path, tc.opts)
			if err == nil {
				q.Close()
				t.Fatal("open succeeded")
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want kind %v", err, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q must name %s and say %q", err, tc.path, tc.msg)
			}
			if statErr == nil && !st.IsDir() && fileHash(t, tc.path) != before {
				t.Fatal("refused file was modified")
			}
		})
	}
}

func TestOpenCreatesParents(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "q.sqlite3")
	q, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnlyFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes through file permissions")
	}
	p := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, rec(1))
	q.Close()
	os.Chmod(p, 0o444)
	os.Chmod(filepath.Dir(p), 0o555)
	defer os.Chmod(filepath.Dir(p), 0o755)
	q, err = Open(p, Options{})
	if err == nil {
		_, err = q.Enqueue(context.Background(), rec(2))
		q.Close()
	}
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), p) {
		t.Fatalf("read-only: %v", err)
	}
}

// TestDiskFull fills the file to its page limit: the failing commit writes
// nothing, earlier commits stay, the file stays sound and usable.
func TestDiskFull(t *testing.T) {
	p := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := Open(p, Options{MaxPageCount: 40, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var committed []int64
	var fullErr error
	for i := 0; i < 10000 && fullErr == nil; i++ {
		r := rec(i)
		r.Payload = `"` + strings.Repeat("p", 500) + `"`
		res, err := q.EnqueueBatch(ctx, []Record{r, recKey(i, r.Key+"-b")})
		if err != nil {
			fullErr = err
			break
		}
		committed = append(committed, res[0].Seq, res[1].Seq)
	}
	if !errors.Is(fullErr, ErrFull) || !strings.Contains(fullErr.Error(), p) {
		t.Fatalf("want ErrFull naming the file, got %v", fullErr)
	}
	// The queue still works for acks and drains after the error.
	if res, err := q.Check(ctx); err != nil || len(res) != 1 || res[0] != "ok" {
		t.Fatalf("integrity after full: %v %v", res, err)
	}
	crash(t, q)
	q, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got := map[int64]bool{}
	for {
		ms := mustLease(t, q, 100, time.Minute)
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			got[m.Seq] = true
			q.Ack(ctx, Ref{Seq: m.Seq})
		}
	}
	if len(got) != len(committed) {
		t.Fatalf("drained %d rows, committed %d", len(got), len(committed))
	}
	for _, s := range committed {
		if !got[s] {
			t.Fatalf("committed row %d missing", s)
		}
	}
}

// TestOpenRefusesDamagedPage: a queue file with one damaged page is
// refused at open (quick_check), before any row is leased or buried, and
// the file is left as it was.
func TestOpenRefusesDamagedPage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := 0; i < 3000; i++ {
		recs = append(recs, rec(i))
	}
	mustEnqueue(t, q, recs...)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pages := len(b) / newFilePageSize
	if pages < 10 {
		t.Fatalf("file has %d pages", pages)
	}
	page := pages / 2
	for i := 0; i < newFilePageSize; i++ {
		b[page*newFilePageSize+i] = byte(i*7 + 13)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, path)
	_, err = Open(path, Options{Private: true})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("open of a damaged file: %v", err)
	}
	if fileHash(t, path) != before {
		t.Fatal("refusing the file changed it")
	}
}

// TestQuickCheckBudget: past its time budget the check at open is
// abandoned (a huge file) and the file is used, with a debug note.
func TestQuickCheckBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, rec(1))
	q.Close()
	old := quickCheckBudget
	quickCheckBudget = time.Nanosecond
	defer func() { quickCheckBudget = old }()
	var logs strings.Builder
	q, err = Open(path, Options{Private: true, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("open past the check budget: %v", err)
	}
	defer q.Close()
	if !strings.Contains(logs.String(), "quick_check skipped") {
		t.Fatalf("no debug note: %q", logs.String())
	}
}

// TestCantOpenSaysWhy: SQLite's bare "unable to open database file (14)"
// (here: the -wal it must create is a directory; on a read-only mount
// the same code) is reported as a file that cannot be opened for
// writing, naming the path. Root writes through permissions, so a
// directory in the WAL's place stands in for a read-only mount.
func TestCantOpenSaysWhy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, rec(1))
	q.Close()
	os.Remove(p + "-wal")
	if err := os.Mkdir(p+"-wal", 0o755); err != nil {
		t.Fatal(err)
	}
	q, err = Open(p, Options{})
	if err == nil {
		_, err = q.Enqueue(context.Background(), rec(2))
		q.Close()
	}
	if !errors.Is(err, ErrCantOpen) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("open with an unopenable -wal: %v", err)
	}
}

// TestBoundFullQueueTakesDuplicates: a duplicate needs no room, so a full
// queue under overflow: block answers it at once (the over-bound path of
// keyHolder): a queued key, the same key with another payload (Conflict),
// and a key remembered from an acked, compacted row.
func TestBoundFullQueueTakesDuplicates(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		q := open(Options{MaxRows: 2})
		ctx := context.Background()
		pre := mustEnqueue(t, q, recKey(1, "queued"), recKey(2, "acked"))
		if _, err := q.Ack(ctx, Ref{Seq: pre[1].Seq}); err != nil {
			t.Fatal(err)
		}
		if err := q.do(ctx, true, func(tx *txn) error { return tx.compact() }); err != nil {
			t.Fatal(err)
		}
		mustEnqueue(t, q, rec(3)) // full: "queued" and rec(3)
		for _, c := range []struct {
			name string
			r    Record
			want Result
		}{
			{"queued key", recKey(1, "queued"), Result{Seq: pre[0].Seq, Duplicate: true}},
			{"queued key, other payload", recKey(9, "queued"), Result{Seq: pre[0].Seq, Duplicate: true, Conflict: true}},
			{"remembered key", recKey(2, "acked"), Result{Seq: pre[1].Seq, Duplicate: true}},
		} {
			// A blocked enqueue would end with the deadline, not a result.
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			got, err := q.Enqueue(cctx, c.r)
			cancel()
			if err != nil || got != c.want {
				t.Fatalf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
			}
		}
	})
}
