//go:build !windows

package test

import (
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// forwardStopGraph is a forwarder whose attempt timeout (timeout_sec)
// and stop_timeout_sec the tests choose: with a timeout far longer than
// the test, only the bounded stop can end requests to a receiver that
// never answers.
const forwardStopGraph = `version: 2
nodes:
  - id: queue
    kind: source
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource
    config: {path: outputs/queues/sf.sqlite3, limit: 100, follow: true, poll_interval_sec: 0.1}
  - id: post
    kind: node
    plugin: schnitzel_stream.nodes.http:HttpJsonSink
    config:
      url: ${oc.env:SF_URL}
      body: packet
      timeout_sec: %g
      retry_max_attempts: 5
      retry_backoff_sec: 0.5
      retry_backoff_max_sec: 4
      max_in_flight: 8
      stop_timeout_sec: %g
      forward: true
  - id: ack
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink
    config: {path: outputs/queues/sf.sqlite3}
edges:
  - {from: queue, to: post}
  - {from: post, to: ack}
`

// TestForwarderSIGTERMWithHungReceiver: SIGTERM to a forwarder whose
// receiver takes requests and never answers. It must exit 0 within
// stop_timeout_sec + 2 s, without sending another request after the
// signal, and leave every row queued: none acked, none nacked (no retry
// scheduled, no dead letter), none left leased.
func TestForwarderSIGTERMWithHungReceiver(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", "schnitzel_stream.nodes.http:HttpJsonSink")
	const count = 200
	const stopTimeout = 1.5
	dir := t.TempDir()
	r := run(t, dir, []string{fmt.Sprintf("SF_COUNT=%d", count), "SF_INTERVAL_SEC=0"},
		"--graph", filepath.Join(root, "configs", "graphs", "sf_producer_v2.yaml"))
	if r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	qpath := filepath.Join(dir, "outputs", "queues", "sf.sqlite3")

	var requests atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		requests.Add(1)
		select { // never answer: wait for the client to go away
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	f := startStopForwarder(t, dir, fmt.Sprintf(forwardStopGraph, 600.0, stopTimeout), srv.URL)
	poll.Until(t, 20*time.Second, "8 requests in flight", func() bool { return requests.Load() >= 8 })
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	atSignal := requests.Load()
	select {
	case err := <-f.done:
		took := time.Since(sent)
		if err != nil {
			t.Errorf("exit after SIGTERM: %v (want 0)\n%s", err, f.stderr.String())
		}
		if limit := time.Duration((stopTimeout + 2) * float64(time.Second)); took > limit {
			t.Errorf("stopped in %v, want within stop_timeout_sec + 2 s = %v", took, limit)
		}
		t.Logf("stopped %v after SIGTERM", took.Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("forwarder did not stop after SIGTERM\n%s", f.stderr.String())
	}
	if n := requests.Load(); n != atSignal {
		t.Errorf("%d requests after SIGTERM, want none", n-atSignal)
	}
	st := queueStats(t, qpath)
	if st.Rows != count || st.Dead != 0 || st.Retried != 0 || st.Delayed != 0 || st.Leased != 0 {
		t.Errorf("queue after stop: rows %d (want %d), dead %d, retried %d, delayed %d, leased %d (want 0 each)\n%s",
			st.Rows, count, st.Dead, st.Retried, st.Delayed, st.Leased, f.stderr.String())
	}
}

// startStopForwarder runs graph text (written to dir) as a forwarder posting to url.
func startStopForwarder(t *testing.T, dir, graph, url string) *forwarder {
	t.Helper()
	path := filepath.Join(dir, "forward.yaml")
	if err := os.WriteFile(path, []byte(graph), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &forwarder{done: make(chan error, 1)}
	f.cmd = exec.Command(bin, "--graph", path, "--report-json")
	f.cmd.Dir = dir
	f.cmd.Env = append(os.Environ(), "SF_URL="+url+"/events")
	f.cmd.Stdout = io.Discard
	f.cmd.Stderr = &f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.done <- f.cmd.Wait() }()
	t.Cleanup(func() { f.cmd.Process.Kill() })
	return f
}

// TestForwarderSIGTERMDuringOutage: SIGTERM to a forwarder whose receiver
// answers 503 to everything, while requests are being retried: no burst of
// retries on the way out (at most the max_in_flight attempts already on
// the wire), exit 0 at once, no attempt charged to any row.
func TestForwarderSIGTERMDuringOutage(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", "schnitzel_stream.nodes.http:HttpJsonSink")
	const count = 1000
	dir := t.TempDir()
	r := run(t, dir, []string{fmt.Sprintf("SF_COUNT=%d", count), "SF_INTERVAL_SEC=0"},
		"--graph", filepath.Join(root, "configs", "graphs", "sf_producer_v2.yaml"))
	if r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	qpath := filepath.Join(dir, "outputs", "queues", "sf.sqlite3")
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		requests.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	f := startStopForwarder(t, dir, fmt.Sprintf(forwardStopGraph, 3.0, 5.0), srv.URL)
	poll.Until(t, 20*time.Second, "retries under way", func() bool { return requests.Load() >= 16 })
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	atSignal := requests.Load()
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v (want 0)\n%s", err, f.stderr.String())
		}
		if took := time.Since(sent); took > 2*time.Second {
			t.Errorf("stopped in %v: nothing was in flight but waits, want at once", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("forwarder did not stop after SIGTERM\n%s", f.stderr.String())
	}
	if n := requests.Load() - atSignal; n > 8 {
		t.Errorf("%d requests after SIGTERM, want at most the 8 in flight", n)
	}
	st := queueStats(t, qpath)
	if st.Rows != count || st.Dead != 0 || st.Retried != 0 || st.Leased != 0 {
		t.Errorf("queue after stop: rows %d (want %d), dead %d, retried %d, leased %d (want 0 each)\n%s",
			st.Rows, count, st.Dead, st.Retried, st.Leased, f.stderr.String())
	}
}
