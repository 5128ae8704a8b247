package test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
)

const crashProducer = `version: 2
nodes:
  - id: ticks
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config:
      interval_sec: 0
      count: 0
  - id: queue
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config:
      path: q.sqlite3
edges:
  - from: ticks
    to: queue
config: {}
`

const crashDrain = `version: 2
nodes:
  - id: queue
    kind: source
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource
    config:
      path: q.sqlite3
      limit: 5000
      drain: true
  - id: ack
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink
    config:
      path: q.sqlite3
edges:
  - from: queue
    to: ack
config: {}
`

// probe runs a one-value query on the queue file with its own
// connection (a reader sees committed rows only).
func probe(t *testing.T, path, query string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n sql.NullInt64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		return 0 // not created yet
	}
	return n.Int64
}

// TestDurableSurvivesKill9 kills a real schnitzel process with SIGKILL in
// the middle of enqueueing, many times in a row. After every kill each row
// a reader had seen committed is still there, the file passes SQLite's
// integrity check, and at the end everything drains and acks.
func TestDurableSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped under -short")
	}
	if r := run(t, "", nil, "plugins"); !strings.Contains(r.stdout, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink") {
		t.Fatal("the durable nodes are not registered in this build (nodes/durable.Register in nodes/all)")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"produce.yaml": crashProducer, "drain.yaml": crashDrain} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	qpath := filepath.Join(dir, "q.sqlite3")
	const kills = 25
	var seen int64 // highest seq seen committed
	for i := 0; i < kills; i++ {
		cmd := exec.Command(bin, "--graph", "produce.yaml")
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until this run has committed something, then kill it at a
		// random moment while it keeps enqueueing.
		if !poll.Wait(30*time.Second, func() bool { return probe(t, qpath, `SELECT MAX(seq) FROM packets`) > seen }) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d committed nothing in 30s; stderr:\n%s", i, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond) // kill at a random point of the write loop
		// Rows a reader sees are committed: they must survive the kill.
		seen = probe(t, qpath, `SELECT MAX(seq) FROM packets`)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		// Nothing is deleted or deduplicated here, so the rows are exactly
		// seq 1..max: every row seen before the kill is still there.
		if n := probe(t, qpath, `SELECT COUNT(*) FROM packets WHERE seq <= ?`, seen); n != seen {
			t.Fatalf("kill %d: %d of the %d rows committed before the kill survived", i, n, seen)
		}
		q, err := queue.Open(qpath, queue.Options{MustExist: true, Private: true})
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", i, err)
		}
		res, err := q.Check(context.Background())
		q.Close()
		if err != nil || len(res) != 1 || res[0] != "ok" {
			t.Fatalf("kill %d: integrity %v %v", i, res, err)
		}
	}
	total := probe(t, qpath, `SELECT COUNT(*) FROM packets`)
	if max := probe(t, qpath, `SELECT MAX(seq) FROM packets`); total != max || total < seen {
		t.Fatalf("%d rows for max seq %d (seen %d): a committed row is missing", total, max, seen)
	}
	t.Logf("%d kills, %d rows committed", kills, total)

	// Every committed row drains (none is corrupt), and is acked.
	r := run(t, dir, nil, "--graph", "drain.yaml", "--report-json")
	if r.code != 0 {
		t.Fatalf("drain exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"node.ack.acked_total":`+strconv.FormatInt(total, 10)) {
		t.Fatalf("drain did not ack all %d rows: %s", total, r.stdout)
	}
	if rows := probe(t, qpath, `SELECT COUNT(*) FROM packets`); rows != 0 {
		t.Fatalf("%d rows left after the drain", rows)
	}
	q, err := queue.Open(qpath, queue.Options{MustExist: true, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if d, _ := q.Dead(context.Background(), 0, 1); len(d) != 0 {
		t.Fatalf("rows were dead-lettered: %+v", d)
	}
}
