//go:build !windows

package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
)

// edgeCutGraph is one graph cut by a nats edge: a ticker on one side, a
// SQLite queue on the other (the queue commits, so the JetStreamSource
// acks only after the commit).
const edgeCutGraph = `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: %v, count: %d}
  - id: sink
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config: {path: q.sqlite3}
edges:
  - {from: src, to: sink, transport: nats}
`

// queueRows counts the rows of q.sqlite3 in dir (0 while it does not exist).
func queueRows(t *testing.T, dir string) int {
	r := run(t, dir, nil, "queue", "stats", "--json", "--path", "q.sqlite3")
	m := regexp.MustCompile(`"rows":\s*(\d+),`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// distinctKeys reads the queue's rows and counts their distinct
// idempotency keys (a packet stored twice would repeat its key).
func distinctKeys(t *testing.T, dir string, n int) (rows, keys int) {
	r := run(t, dir, nil, "queue", "peek", "--json", "--path", "q.sqlite3", "--limit", strconv.Itoa(n+10))
	if r.code != 0 {
		t.Fatalf("queue peek: %d\n%s", r.code, r.stderr)
	}
	var got []struct {
		Key string `json:"idempotency_key"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("queue peek output: %v\n%s", err, r.stdout)
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g.Key] = true
	}
	return len(got), len(seen)
}

// cutProc is a started binary; wait returns its exit error (more than once).
type cutProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func startCutProc(t *testing.T, cmd *exec.Cmd) *cutProc {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &cutProc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.exited })
	return p
}

func (p *cutProc) wait() error { <-p.exited; return p.err }

// TestEdgeCutAcrossProcesses: the two halves of a graph cut by a nats edge
// run as two processes (--part src, --part sink) on an embedded NATS
// server. The downstream process is killed with SIGKILL mid-stream and
// started again: every packet is in its queue exactly once.
func TestEdgeCutAcrossProcesses(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSink")
	srv := natstest.Start(t, natstest.Options{})
	dir := t.TempDir()
	const n = 3000
	// 1 ms apart: the producer is still running when the consumer is killed.
	if err := os.WriteFile(filepath.Join(dir, "cut.yaml"), fmt.Appendf(nil, edgeCutGraph, 0.001, n), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "NATS_URL="+srv.URL())
	start := func(part string) *cutProc {
		cmd := exec.Command(bin, "--graph", "cut.yaml", "--part", part)
		cmd.Dir = dir
		cmd.Env = env
		errf, err := os.Create(filepath.Join(dir, part+".stderr"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { errf.Close() })
		cmd.Stderr = errf
		return startCutProc(t, cmd)
	}
	stderr := func(part string) string {
		b, _ := os.ReadFile(filepath.Join(dir, part+".stderr"))
		return string(b)
	}

	down := start("sink")
	up := start("src")
	poll.Until(t, 60*time.Second, "the downstream half to commit some packets", func() bool { return queueRows(t, dir) >= 300 })
	select {
	case <-up.exited:
		t.Fatalf("the producer ended (%v) before the consumer was killed: not mid-stream\n%s", up.err, stderr("src"))
	default:
	}
	down.cmd.Process.Signal(syscall.SIGKILL)
	down.wait()
	killedAt := queueRows(t, dir)

	down = start("sink")
	select {
	case <-up.exited:
		if up.err != nil {
			t.Fatalf("upstream half: %v\n%s", up.err, stderr("src"))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("upstream half did not end\n%s", stderr("src"))
	}
	// What the killed process held unacked comes back after the source's
	// ack_wait_sec (30 s): the bound on standing still is above it.
	poll.UntilProgress(t, 45*time.Second, "every packet in the downstream queue",
		func() int64 { return int64(queueRows(t, dir)) },
		func() bool { return queueRows(t, dir) >= n })
	down.cmd.Process.Signal(syscall.SIGTERM)
	if err := down.wait(); err != nil {
		t.Fatalf("downstream half: %v\n%s", err, stderr("sink"))
	}
	rows, keys := distinctKeys(t, dir, n)
	if rows != n || keys != n {
		t.Errorf("queue holds %d rows with %d distinct keys, want %d of each", rows, keys, n)
	}
	t.Logf("killed at %d of %d", killedAt, n)
}

// TestEdgeCutOneProcessAndSplit: without --part the whole cut graph runs
// in one process (through the server); graph split writes parts that run
// on their own.
func TestEdgeCutOneProcessAndSplit(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSink")
	srv := natstest.Start(t, natstest.Options{})
	dir := t.TempDir()
	const n = 200
	if err := os.WriteFile(filepath.Join(dir, "cut.yaml"), fmt.Appendf(nil, edgeCutGraph, 0, n), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"NATS_URL=" + srv.URL()}
	if r := run(t, dir, env, "validate", "cut.yaml"); r.code != 0 {
		t.Fatalf("validate: %d\n%s", r.code, r.stderr)
	}
	if r := run(t, dir, env, "--graph", "cut.yaml", "--part", "snk"); r.code != 2 || !regexp.MustCompile(`no node "snk".*did you mean "sink"`).MatchString(r.stderr) {
		t.Fatalf("--part snk: %d\n%s", r.code, r.stderr)
	}

	// The source follows the stream, so the one-process run goes on
	// until it is stopped.
	cmd := exec.Command(bin, "--graph", "cut.yaml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	one := startCutProc(t, cmd)
	poll.UntilProgress(t, 20*time.Second, "every packet through the server into the queue",
		func() int64 { return int64(queueRows(t, dir)) },
		func() bool { return queueRows(t, dir) >= n })
	cmd.Process.Signal(syscall.SIGTERM)
	if err := one.wait(); err != nil {
		t.Fatalf("one-process run: %v", err)
	}

	r := run(t, dir, env, "graph", "split", "cut.yaml", "--out", "parts")
	if r.code != 0 {
		t.Fatalf("graph split: %d\n%s", r.code, r.stderr)
	}
	for _, f := range []string{"cut.part1.src.yaml", "cut.part2.sink.yaml"} {
		if v := run(t, dir, nil, "validate", filepath.Join("parts", f)); v.code != 0 {
			t.Errorf("validate %s: %d\n%s", f, v.code, v.stderr)
		}
	}
	// The producer's part alone publishes n more packets (new ids) and ends.
	if p := run(t, dir, nil, "--graph", filepath.Join("parts", "cut.part1.src.yaml")); p.code != 0 {
		t.Fatalf("split producer part: %d\n%s", p.code, p.stderr)
	}
	sub := exec.Command(bin, "--graph", filepath.Join("parts", "cut.part2.sink.yaml"))
	sub.Dir = dir
	sp := startCutProc(t, sub)
	poll.UntilProgress(t, 20*time.Second, "the split consumer part to take the new packets",
		func() int64 { return int64(queueRows(t, dir)) },
		func() bool { return queueRows(t, dir) >= 2*n })
	sub.Process.Signal(syscall.SIGTERM)
	sp.wait()
	if rows, keys := distinctKeys(t, dir, 2*n); rows != 2*n || keys != 2*n {
		t.Errorf("queue holds %d rows with %d distinct keys, want %d", rows, keys, 2*n)
	}
}
