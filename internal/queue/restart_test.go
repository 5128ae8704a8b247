package queue

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestRestartWithAckedBacklog measures the time from opening a queue
// that a crash left with many acked rows awaiting compaction to its
// first lease. It is a measurement, not a check: set
// SCHNITZEL_RESTART_ROWS (e.g. 600000) to run it.
//
//	SCHNITZEL_RESTART_ROWS=600000 go test -run TestRestartWithAckedBacklog -v ./internal/queue
func TestRestartWithAckedBacklog(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SCHNITZEL_RESTART_ROWS"))
	if n <= 0 {
		t.Skip("set SCHNITZEL_RESTART_ROWS to measure")
	}
	path := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	for left := n; left > 0; left -= 10000 {
		recs := make([]Record, 0, 10000)
		for i := 0; i < min(left, 10000); i++ {
			recs = append(recs, rec(n-left+i))
		}
		mustEnqueue(t, q, recs...)
	}
	q.Close()
	// What a crash leaves: every row but the last 100 acked, none deleted.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT OR REPLACE INTO schnitzel_queue_state (seq, attempts, acked, acked_until) SELECT seq, 0, 1, ? FROM packets WHERE seq <= ?`,
		time.Now().Add(time.Hour).UnixMilli(), n-100); err != nil {
		t.Fatal(err)
	}
	db.Close()
	t0 := time.Now()
	q, err = Open(path, Options{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Since(t0)
	ms, err := q.Lease(context.Background(), 1, time.Minute)
	if err != nil || len(ms) != 1 {
		t.Fatalf("lease %v %v", ms, err)
	}
	first := time.Since(t0)
	// The next 99 rows, leased and acked one at a time, as a forwarder would.
	for i := 0; i < 99; i++ {
		ms, err := q.Lease(context.Background(), 1, time.Minute)
		if err != nil || len(ms) != 1 {
			t.Fatalf("lease %d: %v %v", i, ms, err)
		}
		if _, err := q.Ack(context.Background(), Ref{Seq: ms[0].Seq}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acked rows awaiting compaction: open %v, first lease %v after open began, 100 rows delivered after %v", n-100, opened, first, time.Since(t0))
	q.Close()
}
