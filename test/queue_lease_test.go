//go:build !windows

package test

import (
	"encoding/json"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// leaseReceiver is a collector behind a store-and-forward link: 503 while
// down, else 200 after an optional delay, recording when each
// Idempotency-Key was first accepted and how often.
type leaseReceiver struct {
	srv   *httptest.Server
	delay time.Duration

	mu       sync.Mutex
	down     bool
	requests int
	accepted int
	first    map[string]time.Time // key -> first 200
	count    map[string]int       // key -> 200s
	bySeq    map[int64]int        // payload seq -> 200s
	problems []string
}

func newLeaseReceiver(t *testing.T, down bool, delay time.Duration) *leaseReceiver {
	rc := &leaseReceiver{down: down, delay: delay, first: map[string]time.Time{}, count: map[string]int{}, bySeq: map[int64]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *leaseReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if rc.delay > 0 {
		time.Sleep(rc.delay) // a slow collector
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if rc.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var env struct {
		Payload struct {
			Seq *int64 `json:"seq"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Payload.Seq == nil {
		rc.problems = append(rc.problems, fmt.Sprintf("bad body %q: %v", body, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	rc.accepted++
	if rc.count[key] == 0 {
		rc.first[key] = time.Now()
	}
	rc.count[key]++
	rc.bySeq[*env.Payload.Seq]++
	w.WriteHeader(http.StatusOK)
}

func (rc *leaseReceiver) setDown(down bool) {
	rc.mu.Lock()
	rc.down = down
	rc.mu.Unlock()
}

func (rc *leaseReceiver) counts() (requests, accepted, distinct int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests, rc.accepted, len(rc.count)
}

// leaseForwarder is the store-and-forward graph of these tests:
// SqliteQueueSource (follow) -> HttpJsonSink (forward: true) -> ack.
func leaseForwarder(url string, leaseSec float64, maxAttempts int) string {
	return fmt.Sprintf(`version: 2
nodes:
  - id: queue
    kind: source
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource
    config:
      path: q.sqlite3
      limit: 100
      follow: true
      poll_interval_sec: 0.05
      lease_sec: %g
      max_attempts: %d
      retry_backoff_sec: 0.05
      retry_backoff_max_sec: 0.5
  - id: post
    kind: node
    plugin: schnitzel_stream.nodes.http:HttpJsonSink
    config:
      url: %s
      body: packet
      timeout_sec: 2
      retry_max_attempts: 2
      retry_backoff_sec: 0.05
      retry_backoff_max_sec: 0.1
      forward: true
  - id: ack
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink
    config:
      path: q.sqlite3
edges:
  - from: queue
    to: post
  - from: post
    to: ack
config: {}
`, leaseSec, maxAttempts, url)
}

const leaseProducer = `version: 2
nodes:
  - id: ticks
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config:
      interval_sec: %g
      count: %d
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

// qproc is a schnitzel child process.
type qproc struct {
	cmd    *exec.Cmd
	stderr logbuf.Buffer
	done   chan error
	start  time.Time
}

func startQProc(t *testing.T, dir string, args ...string) *qproc {
	t.Helper()
	p := &qproc{done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = &p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done; p.done <- nil })
	return p
}

func (p *qproc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err
}

// stop sends SIGTERM and waits for a clean exit.
func (p *qproc) stop(t *testing.T, what string) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("%s exit after SIGTERM: %v\n%s", what, err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s of SIGTERM\n%s", what, p.stderr.String())
	}
}

func writeGraph(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestForwardKillLoop kills an always-on forwarder with SIGKILL at random
// moments, 30 times (6 under -short), while a producer keeps writing and
// the receiver first answers 503, then 200. Nothing is lost, no row is
// dead-lettered, each restart delivers soon after it starts (leases of
// the killed run come back at once instead of after lease_sec), and every
// duplicate the receiver sees is a packet first accepted shortly before
// a kill (delivered, its ack not yet committed).
func TestForwardKillLoop(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", "schnitzel_stream.nodes.http:HttpJsonSink")
	kills := 30
	if testing.Short() {
		kills = 6
	}
	outage := kills / 3
	dir := t.TempDir()
	rc := newLeaseReceiver(t, true, 0)
	writeGraph(t, dir, "fwd.yaml", leaseForwarder(rc.srv.URL+"/events", 30, 10000))
	writeGraph(t, dir, "prod.yaml", fmt.Sprintf(leaseProducer, 0.002, 0))
	qpath := filepath.Join(dir, "q.sqlite3")

	producer := startQProc(t, dir, "--graph", "prod.yaml")
	poll.Until(t, 30*time.Second, "the producer to commit rows", func() bool { return probe(t, qpath, `SELECT COUNT(*) FROM packets`) > 50 })

	var killTimes []time.Time
	var firstDelivery []time.Duration // per healthy restart: start to first 200
	for i := 0; i < kills; i++ {
		if i == outage {
			rc.setDown(false)
		}
		req0, acc0, _ := rc.counts()
		f := startQProc(t, dir, "--graph", "fwd.yaml")
		if i < outage {
			poll.Until(t, 20*time.Second, "the forwarder to post", func() bool { r, _, _ := rc.counts(); return r > req0 })
		} else {
			if !poll.Wait(20*time.Second, func() bool { _, a, _ := rc.counts(); return a > acc0 }) {
				t.Fatalf("restart %d delivered nothing in 20s\n%s", i, f.stderr.String())
			}
			firstDelivery = append(firstDelivery, time.Since(f.start))
		}
		time.Sleep(time.Duration(rand.IntN(800)) * time.Millisecond) // a random moment of the run
		f.kill(t)
		killTimes = append(killTimes, time.Now())
		if strings.Contains(f.stderr.String(), "panic") {
			t.Fatalf("forwarder panicked:\n%s", f.stderr.String())
		}
	}

	final := startQProc(t, dir, "--graph", "fwd.yaml")
	producer.stop(t, "producer")
	total := probe(t, qpath, `SELECT seq FROM sqlite_sequence WHERE name = 'packets'`)
	// The backlog of the outage drains at the machine's pace: fail when
	// delivery stands still, not at a fixed total time.
	delivered := func() int64 { _, _, d := rc.counts(); return int64(d) }
	poll.UntilProgress(t, 30*time.Second, "every produced packet at the receiver", delivered, func() bool { return delivered() == total })
	rows := func() int64 { return probe(t, qpath, `SELECT COUNT(*) FROM packets`) }
	poll.UntilProgress(t, 30*time.Second, "the queue to drain", func() int64 { return -rows() }, func() bool { return rows() == 0 })
	final.stop(t, "final forwarder")

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range rc.problems {
		t.Error(p)
	}
	for seq := int64(0); seq < total; seq++ {
		if rc.bySeq[seq] == 0 {
			t.Errorf("payload seq %d never delivered (lost)", seq)
		}
	}
	if dead := probe(t, qpath, `SELECT COUNT(*) FROM schnitzel_queue_dead`); dead != 0 {
		t.Errorf("%d rows dead-lettered", dead)
	}
	// A duplicate must come from a packet first accepted just before a
	// kill: delivered while its forwarder died, before its ack committed.
	dups, maxPerKill := 0, 0
	perKill := map[int]int{}
	for key, n := range rc.count {
		if n < 2 {
			continue
		}
		dups += n - 1
		fa := rc.first[key]
		k, found := slices.BinarySearchFunc(killTimes, fa, func(a, b time.Time) int { return a.Compare(b) })
		_ = found
		if k == len(killTimes) {
			t.Errorf("key %s delivered %d times, first at %s by the final forwarder, which was never killed", key, n, fa.Format(time.RFC3339Nano))
			continue
		}
		if gap := killTimes[k].Sub(fa); gap > 10*time.Second { // acks can lag seconds on a loaded machine (SQLite lock shared with the producer)
			t.Errorf("key %s delivered %d times, first at %s, %s before the next kill (kill %d): not shortly before a kill", key, n, fa.Format(time.RFC3339Nano), gap.Round(time.Millisecond), k)
			continue
		}
		perKill[k] += n - 1
		maxPerKill = max(maxPerKill, perKill[k])
	}
	slices.Sort(firstDelivery)
	var worst, median time.Duration
	if len(firstDelivery) > 0 {
		worst, median = firstDelivery[len(firstDelivery)-1], firstDelivery[len(firstDelivery)/2]
	}
	t.Logf("%d kills (%d in the outage), %d rows produced, %d requests, %d accepted, %d duplicates (at most %d from one kill); restart to first delivery: median %v, worst %v over %d healthy restarts",
		kills, outage, total, rc.requests, rc.accepted, dups, maxPerKill, median.Round(time.Millisecond), worst.Round(time.Millisecond), len(firstDelivery))
}

// TestHealthyKillsNeverDeadLetter: three kills of a forwarder with a
// 1 s lease and max_attempts 3, against a receiver that accepts
// everything, dead-letter nothing (a crash charges only the rows that were
// being delivered, and those were mostly delivered).
func TestHealthyKillsNeverDeadLetter(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", "schnitzel_stream.nodes.http:HttpJsonSink")
	// Enough rows, and a receiver slow enough (64 requests in flight at
	// 10 ms: at most 6,400/s), that the queue is not drained before the
	// third kill; 3000 rows at 1 ms were all delivered by the first run.
	const rows = 20000
	dir := t.TempDir()
	rc := newLeaseReceiver(t, false, 10*time.Millisecond)
	writeGraph(t, dir, "fwd.yaml", leaseForwarder(rc.srv.URL+"/events", 1, 3))
	writeGraph(t, dir, "prod.yaml", fmt.Sprintf(leaseProducer, 0.0, rows))
	if r := run(t, dir, nil, "--graph", "prod.yaml"); r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	qpath := filepath.Join(dir, "q.sqlite3")
	for i := 0; i < 3; i++ {
		_, acc0, _ := rc.counts()
		f := startQProc(t, dir, "--graph", "fwd.yaml")
		poll.Until(t, 20*time.Second, "deliveries", func() bool { _, a, _ := rc.counts(); return a > acc0+20 })
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		f.kill(t)
	}
	f := startQProc(t, dir, "--graph", "fwd.yaml")
	if !poll.Wait(120*time.Second, func() bool { _, _, d := rc.counts(); return d == rows }) {
		_, _, d := rc.counts()
		st := run(t, dir, nil, "queue", "stats", "--path", "q.sqlite3")
		pk := run(t, dir, nil, "queue", "peek", "--path", "q.sqlite3", "--limit", "3")
		t.Fatalf("%d of %d rows delivered after 120s\n%s\n%s\n%s", d, rows, st.stdout, pk.stdout, f.stderr.String())
	}
	poll.Until(t, 60*time.Second, "the queue to drain", func() bool { return probe(t, qpath, `SELECT COUNT(*) FROM packets`) == 0 })
	f.stop(t, "forwarder")
	if dead := probe(t, qpath, `SELECT COUNT(*) FROM schnitzel_queue_dead`); dead != 0 {
		t.Fatalf("%d rows dead-lettered by three kills of a healthy forwarder\n%s", dead, f.stderr.String())
	}
	_, acc, d := rc.counts()
	t.Logf("%d rows, 3 kills: %d accepted, %d duplicates, 0 dead letters", d, acc, acc-d)
}

// TestDamagedQueueRefusedBeforeDelivery: a forwarder on a copy of a queue
// file with one damaged page refuses to start, naming the file, and
// delivers nothing.
func TestDamagedQueueRefusedBeforeDelivery(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", "schnitzel_stream.nodes.http:HttpJsonSink")
	dir := t.TempDir()
	rc := newLeaseReceiver(t, false, 0)
	writeGraph(t, dir, "fwd.yaml", leaseForwarder(rc.srv.URL+"/events", 30, 5))
	writeGraph(t, dir, "prod.yaml", fmt.Sprintf(leaseProducer, 0.0, 5000))
	if r := run(t, dir, nil, "--graph", "prod.yaml"); r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	qpath := filepath.Join(dir, "q.sqlite3")
	b, err := os.ReadFile(qpath)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 8192
	page := len(b) / pageSize / 2
	for i := 0; i < pageSize; i++ {
		b[page*pageSize+i] = byte(i*31 + 7)
	}
	if err := os.WriteFile(qpath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, nil, "--graph", "fwd.yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "q.sqlite3") || !strings.Contains(r.stderr, "corrupt") {
		t.Fatalf("forwarder on a damaged file: exit %d\n%s", r.code, r.stderr)
	}
	if req, _, _ := rc.counts(); req != 0 {
		t.Fatalf("%d requests sent from a damaged file", req)
	}
	after, _ := os.ReadFile(qpath)
	if string(after) != string(b) {
		t.Fatal("the refused file was changed")
	}
	if r := run(t, dir, nil, "queue", "stats", "--path", "q.sqlite3", "--check"); r.code != 1 || !strings.Contains(r.stderr+r.stdout, "q.sqlite3") {
		t.Fatalf("queue stats --check on a damaged file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestQueueStatsOnReadOnlyMount: the read commands work on a chmod 0444
// file in a read-only directory. Root ignores permissions, so as root the
// directory is bind-mounted read-only (or made immutable).
func TestQueueStatsOnReadOnlyMount(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeGraph(t, src, "prod.yaml", fmt.Sprintf(leaseProducer, 0.0, 25))
	if r := run(t, src, nil, "--graph", "prod.yaml"); r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	if err := os.Chmod(filepath.Join(src, "q.sqlite3"), 0o444); err != nil {
		t.Fatal(err)
	}
	ro := src
	if os.Geteuid() == 0 {
		ro = filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o755); err != nil {
			t.Fatal(err)
		}
		mounted := exec.Command("mount", "--bind", src, ro).Run() == nil
		if mounted {
			t.Cleanup(func() { exec.Command("umount", ro).Run() })
			if err := exec.Command("mount", "-o", "remount,ro,bind", ro).Run(); err != nil {
				mounted = false
			}
		}
		if !mounted {
			ro = src
			if err := exec.Command("chattr", "+i", filepath.Join(src, "q.sqlite3"), src).Run(); err != nil {
				t.Skip("running as root without mount or chattr: cannot make a read-only directory")
			}
			t.Cleanup(func() { exec.Command("chattr", "-i", filepath.Join(src, "q.sqlite3"), src).Run() })
		}
	} else if err := os.Chmod(src, 0o555); err != nil {
		t.Fatal(err)
	} else {
		t.Cleanup(func() { os.Chmod(src, 0o755) })
	}
	if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644); err == nil {
		t.Fatal("the directory is still writable")
	}
	qp := filepath.Join(ro, "q.sqlite3")
	r := run(t, dir, nil, "queue", "stats", "--path", qp, "--json", "--check")
	if r.code != 0 {
		t.Fatalf("stats on a read-only file: exit %d\n%s", r.code, r.stderr)
	}
	var st struct {
		Rows      int64    `json:"rows"`
		Integrity []string `json:"integrity"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Rows != 25 || len(st.Integrity) != 1 || st.Integrity[0] != "ok" {
		t.Fatalf("stats %s (%v)", r.stdout, err)
	}
	for _, cmd := range []string{"peek", "dead"} {
		if r := run(t, dir, nil, "queue", cmd, "--path", qp, "--json"); r.code != 0 {
			t.Fatalf("%s on a read-only file: exit %d\n%s", cmd, r.code, r.stderr)
		}
	}
}

// TestSlowDeliveryKeepsLeases: with lease_sec 1 and a receiver that takes
// 10 ms per packet, 300 rows take several lease lengths to deliver; the
// live forwarder renews its leases, so no row is delivered twice.
func TestSlowDeliveryKeepsLeases(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", "schnitzel_stream.nodes.http:HttpJsonSink")
	const rows = 300
	dir := t.TempDir()
	rc := newLeaseReceiver(t, false, 10*time.Millisecond)
	writeGraph(t, dir, "fwd.yaml", leaseForwarder(rc.srv.URL+"/events", 1, 3))
	writeGraph(t, dir, "prod.yaml", fmt.Sprintf(leaseProducer, 0.0, rows))
	if r := run(t, dir, nil, "--graph", "prod.yaml"); r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	f := startQProc(t, dir, "--graph", "fwd.yaml")
	poll.Until(t, 30*time.Second, "the first deliveries", func() bool { _, a, _ := rc.counts(); return a > 0 })
	// A second process under the same consumer name refuses to start.
	r := run(t, dir, nil, "--graph", "fwd.yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "consumer") || !strings.Contains(r.stderr, "pid") {
		t.Fatalf("second forwarder with the same consumer: exit %d\n%s", r.code, r.stderr)
	}
	poll.Until(t, 120*time.Second, "every row delivered", func() bool { _, _, d := rc.counts(); return d == rows })
	poll.Until(t, 60*time.Second, "the queue to drain", func() bool { return probe(t, filepath.Join(dir, "q.sqlite3"), `SELECT COUNT(*) FROM packets`) == 0 })
	f.stop(t, "forwarder")
	if _, acc, d := rc.counts(); acc != d {
		t.Fatalf("%d deliveries of %d rows in one live run: leases expired while rows waited", acc, d)
	}
}
