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
	"syscall"
	"testing"
	"time"
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

// startTicker starts a never-ending graph and waits until it has printed.
func startTicker(t *testing.T, extra ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(tickerGraph), 0o644)
	cmd := exec.Command(bin, append([]string{"--graph", "g.yaml", "--report-json"}, extra...)...)
	cmd.Dir = dir
	pr, pw := io.Pipe()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !once {
				once = true
				close(first)
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); pw.Close() })
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		t.Fatalf("no output: %s", errb.String())
	}
	cmd.Stdout = nil
	t.Cleanup(func() {})
	go func() { cmd.Wait(); pw.Close() }()
	return cmd, &out, &errb
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for cmd.ProcessState == nil {
		if time.Now().After(deadline) {
			t.Fatal("process did not exit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd.ProcessState.ExitCode()
}

func TestSIGTERMDrainsClosesAndReports(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd, out, errb := startTicker(t)
		time.Sleep(100 * time.Millisecond)
		cmd.Process.Signal(sig)
		if code := waitExit(t, cmd); code != 0 {
			t.Fatalf("%v: exit %d\n%s", sig, code, errb.String())
		}
		time.Sleep(50 * time.Millisecond) // let the reader finish
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
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go cmd.Wait()
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	code := waitExit(t, cmd)
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
	cmd, _, errb := startTicker(t, "--metrics-addr", addr)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, `schnitzel_node_consumed_packets_total{node="out"`) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, `schnitzel_node_consumed_packets_total{node="out",plugin="schnitzel_stream.nodes.dev:PrintSink"}`) {
		t.Errorf("metrics:\n%s\nstderr:\n%s", body, errb.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
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
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	// Wait until rows are being committed, then stop.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(filepath.Join(dir, "q.sqlite3-wal")); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rows written: %s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
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
