//go:build !windows

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
)

// dedupReceiver is the far end of a store-and-forward link: it answers 503
// until the test ends the outage, then accepts each packet, deduplicating on
// the Idempotency-Key header as a real collector would. The test ends the
// outage itself (rather than after fixed seconds) so that every kill is
// known to fall inside it, however slow the machine.
type dedupReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	downFor  time.Duration
	since    time.Time
	requests int            // every request
	refused  int            // answered 503
	accepted int            // answered 200, duplicates included
	bySeq    map[int64]int  // payload seq -> accepted deliveries
	keys     map[string]int // Idempotency-Key -> accepted deliveries
	problems []string
}

func newDedupReceiver(t *testing.T) *dedupReceiver {
	rc := &dedupReceiver{down: true, since: time.Now(), bySeq: map[int64]int{}, keys: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *dedupReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if rc.down {
		rc.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var env struct {
		PacketID string `json:"packet_id"`
		Payload  struct {
			Seq *int64 `json:"seq"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Payload.Seq == nil {
		rc.problems = append(rc.problems, fmt.Sprintf("bad body %q: %v", body, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key != env.PacketID {
		rc.problems = append(rc.problems, fmt.Sprintf("seq %d: Idempotency-Key %q, packet_id %q", *env.Payload.Seq, key, env.PacketID))
	}
	rc.accepted++
	rc.keys[key]++
	rc.bySeq[*env.Payload.Seq]++
	w.WriteHeader(http.StatusOK)
}

// heal ends the outage.
func (rc *dedupReceiver) heal() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.down, rc.downFor = false, time.Since(rc.since)
}

func (rc *dedupReceiver) refusedCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.refused
}

func (rc *dedupReceiver) acceptedCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.accepted
}

func (rc *dedupReceiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.keys)
}

func (rc *dedupReceiver) seen() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}

// requirePlugins skips the test when the binary lacks the nodes it needs.
func requirePlugins(t *testing.T, names ...string) {
	t.Helper()
	r := run(t, "", nil, "plugins")
	for _, n := range names {
		if !strings.Contains(r.stdout, n) {
			t.Skipf("%s is not registered in this build", n)
		}
	}
}

// forwarder is one run of the forwarder graph as a child process.
type forwarder struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

func startForwarder(t *testing.T, dir string, env []string) *forwarder {
	t.Helper()
	f := &forwarder{done: make(chan error, 1)}
	f.cmd = exec.Command(bin, "--graph", filepath.Join(root, "configs", "graphs", "sf_forwarder_v2.yaml"), "--report-json")
	f.cmd.Dir = dir
	f.cmd.Env = append(os.Environ(), env...)
	f.cmd.Stdout = io.Discard
	f.cmd.Stderr = &f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.done <- f.cmd.Wait() }()
	t.Cleanup(func() { f.cmd.Process.Kill() })
	return f
}

// waitFor polls cond until it holds or the deadline passes.

// TestForwardSurvivesOutageAndKills runs the shipped store-and-forward pair
// as real processes: the producer fills the SQLite queue, then the
// forwarder POSTs to a receiver that is down (503), and is killed with
// SIGKILL several times during the outage, each time while it holds leased,
// unacked rows. Every
// produced packet must arrive, and exactly once after deduplication on the
// Idempotency-Key; the queue must end empty with no dead letters.
func TestForwardSurvivesOutageAndKills(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end outage test takes about half a minute")
	}
	requirePlugins(t, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", "schnitzel_stream.nodes.http:HttpJsonSink")
	const count = 60
	const kills = 3
	lease := 3 * time.Second
	dir := t.TempDir()

	r := run(t, dir, []string{fmt.Sprintf("SF_COUNT=%d", count), "SF_INTERVAL_SEC=0"},
		"--graph", filepath.Join(root, "configs", "graphs", "sf_producer_v2.yaml"), "--report-json")
	if r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	qpath := filepath.Join(dir, "outputs", "queues", "sf.sqlite3")
	if st := queueStats(t, qpath); st.Rows != count {
		t.Fatalf("producer queued %d rows, want %d", st.Rows, count)
	}

	rc := newDedupReceiver(t)
	env := []string{"SF_URL=" + rc.srv.URL + "/events", fmt.Sprintf("SF_LEASE_SEC=%g", lease.Seconds())}
	t0 := time.Now()
	f := startForwarder(t, dir, env)
	for i := 0; i < kills; i++ {
		// Kill only once this forwarder is mid-delivery (it has sent a
		// request), so rows are leased and unacked when it dies.
		before := rc.seen()
		poll.Until(t, 20*time.Second, "the forwarder to post", func() bool { return rc.seen() > before })
		if err := f.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-f.done
		f = startForwarder(t, dir, env)
	}
	// Let the last forwarder meet the outage too, then end it.
	before := rc.refusedCount()
	poll.Until(t, 20*time.Second, "the last forwarder to be refused", func() bool { return rc.refusedCount() > before })
	rc.heal()
	// One more kill once deliveries flow: rows the server accepted but the
	// dead forwarder never acked are delivered again after their lease, and
	// the receiver's deduplication must absorb them.
	poll.Until(t, 30*time.Second, "a first packet at the receiver", func() bool { return rc.acceptedCount() > 0 })
	if err := f.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-f.done
	f = startForwarder(t, dir, env)

	poll.Until(t, 90*time.Second, "every packet at the receiver", func() bool { return rc.distinct() == count })
	// Rows delivered by a killed forwarder but never acked come back after
	// their lease; the last forwarder delivers (a duplicate) and acks them.
	poll.Until(t, 60*time.Second, "the queue to drain", func() bool { return queueStats(t, qpath).Rows == 0 })

	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("forwarder exit after SIGTERM: %v\n%s", err, f.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("forwarder did not stop after SIGTERM\n%s", f.stderr.String())
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range rc.problems {
		t.Error(p)
	}
	for seq := int64(0); seq < count; seq++ {
		if rc.bySeq[seq] == 0 {
			t.Errorf("seq %d never delivered (lost)", seq)
		}
	}
	if len(rc.bySeq) != count || len(rc.keys) != count {
		t.Errorf("receiver holds %d seqs under %d keys, want %d of each (one key per packet)", len(rc.bySeq), len(rc.keys), count)
	}
	st := queueStats(t, qpath)
	if st.Rows != 0 || st.Dead != 0 {
		t.Errorf("queue ends with %d rows and %d dead letters, want 0 and 0", st.Rows, st.Dead)
	}
	t.Logf("%d packets, %d kills in the outage and 1 after: %d requests, %d refused (outage %v), %d accepted, %d duplicates dropped by the receiver, done in %v",
		count, kills, rc.requests, rc.refused, rc.downFor.Round(time.Millisecond), rc.accepted, rc.accepted-len(rc.keys), time.Since(t0).Round(time.Millisecond))
}

func queueStats(t *testing.T, path string) queue.Stats {
	t.Helper()
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	defer q.Close()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatalf("queue stats: %v", err)
	}
	return st
}
