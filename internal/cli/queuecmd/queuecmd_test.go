package queuecmd

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/packet"
)

func run(args ...string) (stdout, stderr string, code int, err error) {
	cmd := Command()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.Execute()
	code = 0
	if err != nil {
		code = exitcode.Runtime
		var ee *exitcode.Error
		if errors.As(err, &ee) {
			code = ee.Code
		}
	}
	return out.String(), errb.String(), code, err
}

// fixture makes a queue with 3 rows, one of them dead-lettered.
func fixture(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "q.sqlite3")
	q, err := queue.Open(p, queue.Options{MaxAttempts: 1, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		r, _ := queue.RecordOf(packet.New("demo", "demo01", packet.MapOf("value", int64(i)), "", nil), "")
		if _, err := q.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := q.Lease(ctx, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Nack(ctx, queue.Ref{Seq: ms[0].Seq}, errors.New("http 400")); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStatsPeekDeadRequeuePurge(t *testing.T) {
	p := fixture(t)
	out, _, code, err := run("stats", "--path", p, "--json", "--check")
	if code != 0 {
		t.Fatalf("stats: %v", err)
	}
	var s struct {
		queue.Stats
		Integrity []string
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Rows != 2 || s.Dead != 1 || s.Integrity[0] != "ok" {
		t.Fatalf("stats %s", out)
	}
	out, _, _, _ = run("stats", "--path", p)
	if !regexp.MustCompile(`(?m)^rows\s+2\s`).MatchString(out) || !regexp.MustCompile(`(?m)^dead\s+1$`).MatchString(out) {
		t.Fatalf("text stats %s", out)
	}

	out, _, code, _ = run("peek", "--path", p, "--limit", "1", "--json")
	var ents []queue.Entry
	if code != 0 || json.Unmarshal([]byte(out), &ents) != nil || len(ents) != 1 || ents[0].Seq != 2 {
		t.Fatalf("peek: %d %s", code, out)
	}
	out, _, _, _ = run("peek", "--path", p, "--after", "2")
	if !strings.Contains(out, "seq=3 ") || strings.Contains(out, "seq=2 ") {
		t.Fatalf("peek --after: %s", out)
	}
	out, _, _, _ = run("dead", "--path", p)
	if !strings.Contains(out, "seq=1 ") || !strings.Contains(out, "last_error=gave up after 1 failed attempts; last: http 400") {
		t.Fatalf("dead: %s", out)
	}
	out, _, code, _ = run("requeue", "--path", p, "--all", "--json")
	if code != 0 || !strings.Contains(out, `"requeued": 1`) {
		t.Fatalf("requeue: %s", out)
	}
	out, _, code, _ = run("purge", "--path", p, "--queued", "--dead")
	if code != 0 || out != "purged 3 queued rows, 0 dead letters, 0 remembered keys\n" {
		t.Fatalf("purge: %q", out)
	}
}

func TestQueueCmdErrors(t *testing.T) {
	dir := t.TempDir()
	notQueue := filepath.Join(dir, "notes.txt")
	os.WriteFile(notQueue, bytes.Repeat([]byte("not sqlite "), 500), 0o644)
	missing := filepath.Join(dir, "missing.sqlite3")
	p := fixture(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"stats"}, 2, "--path is required"},
		{[]string{"stats", "--path", missing}, 2, missing + ": open: queue file does not exist"},
		{[]string{"peek", "--path", notQueue}, 2, notQueue + ": not an SQLite file"},
		{[]string{"stats", "--path", notQueue}, 2, "is --path the right file?"},
		{[]string{"requeue", "--path", p, "--seq", "999"}, 1, "nothing requeued: 1 dead letter(s) not found"},
		{[]string{"requeue", "--path", p, "--seq", "999", "--json"}, 1, "nothing requeued"},
		{[]string{"peek", "--path", p, "--limit", "0"}, 2, "--limit must be > 0"},
		{[]string{"requeue", "--path", p}, 2, "either --seq"},
		{[]string{"requeue", "--path", p, "--all", "--seq", "1"}, 2, "either --seq"},
		{[]string{"purge", "--path", p}, 2, "say what to purge"},
		{[]string{"stats", "--path", dir}, 2, "is a directory"},
	}
	for _, tc := range tests {
		_, _, code, err := run(tc.args...)
		if code != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: code %d err %v; want code %d and %q", tc.args, code, err, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("a queue command created a missing queue file")
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadCommandsWriteNothing: stats, peek and dead leave the file as it
// was, even when its metadata is damaged (no queue_id: a read-write open
// would mint one).
func TestReadCommandsWriteNothing(t *testing.T) {
	p := fixture(t)
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM schnitzel_queue_meta WHERE key = 'queue_id'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := fileSum(t, p)
	for _, args := range [][]string{
		{"stats", "--path", p, "--check"}, {"stats", "--path", p, "--json"},
		{"peek", "--path", p}, {"dead", "--path", p, "--json"},
	} {
		if _, _, code, err := run(args...); code != 0 {
			t.Fatalf("%v: %v", args, err)
		}
		if fileSum(t, p) != before {
			t.Fatalf("%v changed the file", args)
		}
	}
}

// TestStatsShowsOwnersAndReleaseAllDead: leases of an owner that is not
// alive are listed as such and given back by release --all-dead; a live
// owner's are refused by release --consumer.
func TestStatsShowsOwnersAndReleaseAllDead(t *testing.T) {
	p := fixture(t)
	live, err := queue.Open(p, queue.Options{Private: true, Consumer: "live-reader"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if ms, err := live.Lease(context.Background(), 1, time.Hour); err != nil || len(ms) != 1 {
		t.Fatalf("lease %v %v", ms, err)
	}
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	// A reader that died holding a row (no lock file: not alive).
	if _, err := db.Exec(`INSERT OR REPLACE INTO schnitzel_queue_state (seq, attempts, lease_until, lease_owner, not_before) VALUES (3, 0, ?, 'ghost', 0)`, time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, _, code, err := run("stats", "--path", p)
	if code != 0 || !regexp.MustCompile(`lease owner\s+ghost\s+1 rows, until \S+, not alive`).MatchString(out) ||
		!regexp.MustCompile(`lease owner\s+live-reader\s+1 rows, until \S+, alive`).MatchString(out) {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	if _, _, code, err := run("release", "--path", p, "--consumer", "live-reader"); code != exitcode.Runtime || !strings.Contains(err.Error(), "alive") {
		t.Fatalf("release of a live consumer: %d %v", code, err)
	}
	out, _, code, err = run("release", "--path", p, "--all-dead")
	if code != 0 || out != "released 1 leased rows\n" {
		t.Fatalf("release --all-dead: %d %v %q", code, err, out)
	}
	out, _, _, _ = run("stats", "--path", p, "--json")
	if strings.Contains(out, "ghost") || !strings.Contains(out, "live-reader") {
		t.Fatalf("after release: %s", out)
	}
	if _, _, code, _ := run("release", "--path", p); code != exitcode.Usage {
		t.Fatalf("release without a target: exit %d", code)
	}
}

// TestReadCommandsOnPythonOnlyFile: a file only the Python project wrote
// (no schnitzel tables) is read without adding them.
func TestReadCommandsOnPythonOnlyFile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "queue", "testdata", "upstream_seed.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "up.sqlite3")
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code, err := run("stats", "--path", p)
	if code != 0 || !regexp.MustCompile(`(?m)^rows\s+\d+\s`).MatchString(out) {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	if _, _, code, err := run("peek", "--path", p); code != 0 {
		t.Fatalf("peek: %v", err)
	}
	if fileSum(t, p) != string(src) {
		t.Fatal("a read command changed a Python-only file")
	}
}
