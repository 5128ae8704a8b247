//go:build !windows

package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

const tickerGraph = `version: 2
nodes:
  - {id: tick, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.001, count: 0}}
  - {id: mid, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink", config: {prefix: "T "}}
edges:
  - {from: tick, to: mid}
  - {from: mid, to: out}
`

// proc is a started child whose exit code arrives on exited.
type proc struct {
	cmd    *exec.Cmd
	exited chan int
}

// start starts cmd and reaps it in the background.
func start(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan int, 1)}
	go func() {
		cmd.Wait()
		p.exited <- cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

func waitExit(t *testing.T, p *proc) int {
	t.Helper()
	select {
	case code := <-p.exited:
		return code
	case <-time.After(20 * time.Second):
		t.Fatal("process did not exit")
		return -1
	}
}

// startTicker starts a never-ending graph and waits until it has printed.
func startTicker(t *testing.T, extra ...string) (*proc, *lockedBuffer, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(tickerGraph), 0o644)
	cmd := exec.Command(bin, append([]string{"--graph", "g.yaml", "--report-json"}, extra...)...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{done: make(chan struct{})}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	first := make(chan struct{})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read stdout to its end before Wait (StdoutPipe's rule).
	go func() {
		defer close(out.done)
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			out.write(sc.Text() + "\n")
			if !once {
				once = true
				close(first)
			}
		}
	}()
	p := &proc{cmd: cmd, exited: make(chan int, 1)}
	go func() {
		<-out.done
		cmd.Wait()
		p.exited <- cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		t.Fatalf("no output: %s", errb.String())
	}
	return p, out, &errb
}

// lockedBuffer collects a child's stdout from a reader goroutine.
type lockedBuffer struct {
	mu   sync.Mutex
	b    strings.Builder
	done chan struct{}
}

func (l *lockedBuffer) write(s string) {
	l.mu.Lock()
	l.b.WriteString(s)
	l.mu.Unlock()
}

// String waits until stdout is closed, then returns all of it.
func (l *lockedBuffer) String() string {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSIGTERMDrainsClosesAndReports(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		p, out, errb := startTicker(t)
		time.Sleep(100 * time.Millisecond)
		p.cmd.Process.Signal(sig)
		if code := waitExit(t, p); code != 0 {
			t.Fatalf("%v: exit %d\n%s", sig, code, errb.String())
		}
		ls := lines(out.String())
		rep := lastReport(t, out.String())
		printed := int64(len(ls) - 1)
		if rep.Status != "ok" || rep.Metrics["node.out.consumed"] != printed || rep.Metrics["packets.source_emitted_total"] != printed {
			t.Errorf("%v: printed %d, report %v (every emitted packet must drain to the sink)", sig, printed, rep.Metrics)
		}
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	dir := t.TempDir()
	// stdout is a pipe nobody reads: once it is full the sink blocks, so
	// the drain the first signal starts can never finish.
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(strings.Replace(tickerGraph, "interval_sec: 0.001", "interval_sec: 0", 1)), 0o644)
	cmd := exec.Command(bin, "--graph", "g.yaml")
	cmd.Dir = dir
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout = pw
	errb := &lockedBuffer{done: make(chan struct{})}
	close(errb.done)
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { errb.write(string(b)); return len(b), nil })
	p := start(t, cmd)
	pw.Close()
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	// A second signal counts only more than 1 s after the first (one
	// within that is the same stop: timeout -s INT signals twice at once).
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	code := waitExit(t, p)
	if code != 1 || !strings.Contains(errb.String(), "second signal") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
}

func TestMetricsEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, _, errb := startTicker(t, "--metrics-addr", addr)
	var body string
	poll.Wait(10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `schnitzel_node_consumed_packets_total{node="out"`)
	})
	if !strings.Contains(body, `schnitzel_node_consumed_packets_total{node="out",plugin="schnitzel_stream.nodes.dev:PrintSink"}`) {
		t.Errorf("metrics:\n%s\nstderr:\n%s", body, errb.String())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, p); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// Graceful stop under a service manager: SIGTERM while a durable queue sink
// is being fed as fast as it can take packets; every packet the report says
// was enqueued must be a row in the file afterwards, and nothing more.
func TestSIGTERMLosesNoCommittedRow(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(`version: 2
nodes:
  - {id: tick, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 0}}
  - {id: q, kind: sink, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink", config: {path: q.sqlite3}}
edges:
  - {from: tick, to: q}
`), 0o644)
	cmd := exec.Command(bin, "--graph", "g.yaml", "--report-json")
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	p := start(t, cmd)
	// Wait until rows are being committed, then stop.
	if !poll.Wait(20*time.Second, func() bool {
		st, err := os.Stat(filepath.Join(dir, "q.sqlite3-wal"))
		return err == nil && st.Size() > 0
	}) {
		t.Fatalf("no rows written: %s", errb.String())
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, p); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	rep := lastReport(t, out.String())
	stats := run(t, dir, nil, "queue", "stats", "--path", "q.sqlite3", "--json")
	var st struct {
		Rows int64 `json:"rows"`
	}
	if err := json.Unmarshal([]byte(stats.stdout), &st); err != nil {
		t.Fatalf("%v: %s %s", err, stats.stdout, stats.stderr)
	}
	enq := rep.Metrics["node.q.enqueued_total"]
	if enq == 0 || enq != st.Rows || rep.Metrics["packets.source_emitted_total"] != st.Rows || rep.Status != "ok" {
		t.Errorf("report: status %s enqueued %d emitted %d; file has %d rows", rep.Status, enq, rep.Metrics["packets.source_emitted_total"], st.Rows)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
