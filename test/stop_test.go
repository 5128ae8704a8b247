//go:build !windows

package test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// metricsAddr finds the metrics listener's address in a run's log.
var metricsAddr = regexp.MustCompile(`msg="serving Prometheus metrics" addr=(127\.0\.0\.1:\d+)`)

const circulatingCycle = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}, {payload: 2}]}}
  - {id: gate, kind: delay, plugin: "schnitzel_stream.nodes.dev:Identity"}
  - {id: mid, plugin: "schnitzel_stream.nodes.dev:%MID%"}
edges:
  - {from: src, to: gate}
  - {from: gate, to: mid}
  - {from: mid, to: gate}
`

// stopReport is the part of the report a bounded stop adds.
type stopReport struct {
	Status      string           `json:"status"`
	Stopped     bool             `json:"stopped_by_signal"`
	Expired     bool             `json:"stop_timeout_expired"`
	Abandoned   int64            `json:"abandoned_total"`
	Stuck       []string         `json:"stuck_nodes"`
	Metrics     map[string]int64 `json:"metrics"`
	ErrorDetail *struct {
		Node    string `json:"node"`
		Message string `json:"message"`
	} `json:"error"`
}

// startGraph runs graph with extra flags and waits until it serves
// metrics (the graph is built and running), so a signal finds it running.
func startGraph(t *testing.T, graph string, extra ...string) (*proc, *lockedBuffer, *lockedBuffer) {
	t.Helper()
	return startGraphEnv(t, nil, graph, extra...)
}

func startGraphEnv(t *testing.T, env []string, graph string, extra ...string) (*proc, *lockedBuffer, *lockedBuffer) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(graph), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--graph", "g.yaml", "--report-json", "--metrics-addr", "127.0.0.1:0"}, extra...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{done: make(chan struct{})}
	errb := &lockedBuffer{done: make(chan struct{})}
	close(out.done)
	close(errb.done)
	cmd.Stdout = writerFunc(func(b []byte) (int, error) { out.write(string(b)); return len(b), nil })
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { errb.write(string(b)); return len(b), nil })
	p := start(t, cmd)
	poll.Until(t, 20*time.Second, "the graph to serve metrics", func() bool { return metricsAddr.MatchString(errb.String()) })
	return p, out, errb
}

func readStopReport(t *testing.T, stdout string) stopReport {
	t.Helper()
	ls := lines(stdout)
	if len(ls) == 0 {
		t.Fatal("no report on stdout")
	}
	var r stopReport
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &r); err != nil {
		t.Fatalf("last stdout line is not the report: %v\n%s", err, ls[len(ls)-1])
	}
	return r
}

// exitWithin waits for the exit, failing when it takes longer than bound.
func exitWithin(t *testing.T, p *proc, bound time.Duration, errb *lockedBuffer) int {
	t.Helper()
	select {
	case code := <-p.exited:
		return code
	case <-time.After(bound):
		t.Fatalf("did not exit within %s of the signal: %s", bound, errb.String())
		return -1
	}
}

// Identity in a loop through a delay node circulates for ever: SIGTERM
// stops it within --stop-timeout (plus closing), exit 0, and the report
// says what was abandoned.
func TestSIGTERMStopsCyclicGraph(t *testing.T) {
	p, out, errb := startGraph(t, strings.Replace(circulatingCycle, "%MID%", "Identity", 1), "--stop-timeout", "300ms")
	// Signal only once both packets circulate: a signal before the source
	// emitted would stop a graph with nothing to abandon.
	url := "http://" + metricsAddr.FindStringSubmatch(errb.String())[1] + "/metrics"
	poll.Until(t, 20*time.Second, "both packets to circulate", func() bool {
		return scrapeMetric(url, "mid", "schnitzel_node_consumed_packets_total") >= 2
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := exitWithin(t, p, 15*time.Second, errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	r := readStopReport(t, out.String())
	if !r.Stopped || !r.Expired || r.Abandoned != 2 || r.Status != "degraded" {
		t.Errorf("report %+v: want stopped, expired, the 2 circulating packets abandoned, degraded", r)
	}
	if r.Metrics["node.gate.abandoned_total"]+r.Metrics["node.mid.abandoned_total"] != 2 || r.Metrics["packets.abandoned_total"] != 2 {
		t.Errorf("metrics %v", r.Metrics)
	}
}

// A BurstNode in the loop grows the cycle: the delay node's bounded inbox
// fills and the run ends with an error naming it, instead of eating memory.
func TestGrowingCycleFailsNamingTheGate(t *testing.T) {
	dir := t.TempDir()
	g := strings.Replace(circulatingCycle, `%MID%"}`, `BurstNode", config: {count: 2}}`, 1)
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(g), 0o644)
	r := run(t, dir, nil, "--graph", "g.yaml", "--report-json")
	if r.code != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	rep := readStopReport(t, r.stdout)
	if rep.Status != "error" || rep.ErrorDetail == nil || rep.ErrorDetail.Node != "gate" || !strings.Contains(rep.ErrorDetail.Message, "cycle grows faster than it drains") {
		t.Errorf("report %+v", rep)
	}
}

// An HTTP sink in an attempt against a receiver that never answers (a
// sink whose requests hang until its ctx is cancelled): SIGTERM ends the
// run within --stop-timeout, exit 0, the request in flight interrupted
// (the concurrent sink holds it outside Process, so it counts it itself)
// and the run degraded, not ok: a packet was not delivered.
func TestSIGTERMBoundsANodeBlockedInACall(t *testing.T) {
	srv, got := hangingReceiver(t)
	g := `version: 2
nodes:
  - {id: tick, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.01, count: 0}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.http:HttpJsonSink", config: {url: "` + srv.URL + `", timeout_sec: 120, retry_max_attempts: 1}}
edges:
  - {from: tick, to: out}
`
	p, out, errb := startGraph(t, g, "--stop-timeout", "1s")
	if !poll.Wait(20*time.Second, func() bool { return got.Load() > 0 }) {
		t.Fatalf("no request reached the receiver: %s", errb.String())
	}
	t0 := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code := exitWithin(t, p, 20*time.Second, errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("stop took %s with --stop-timeout 1s", d)
	}
	r := readStopReport(t, out.String())
	// The sink runs its requests on its own goroutines (max_in_flight), so
	// the packet in the hung request is the sink's, counted as interrupted
	// (a Loss counter: degraded), not one the runtime abandoned in a call;
	// either way not nacked.
	if !r.Stopped || !r.Expired || r.Status != "degraded" || r.Metrics["node.out.interrupted_total"] < 1 || len(r.Stuck) != 0 {
		t.Errorf("report %+v", r)
	}
	if r.Metrics["node.out.failed_total"] != 0 {
		t.Errorf("an interrupted attempt was counted as a failure: %v", r.Metrics)
	}
}

// SIGHUP (a closed SSH session) is a graceful stop with a report, not rc
// 129; two signals at once (timeout -s INT signals process and group) are
// one stop, not "exit at once".
func TestSIGHUPAndDoubleSignalStopGracefully(t *testing.T) {
	for _, tc := range []struct {
		name string
		sigs []syscall.Signal
	}{
		{"SIGHUP", []syscall.Signal{syscall.SIGHUP}},
		{"two SIGINT at once", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, out, errb := startTicker(t)
			for _, s := range tc.sigs {
				p.cmd.Process.Signal(s)
			}
			if code := waitExit(t, p); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			rep := lastReport(t, out.String())
			if rep.Status != "ok" || strings.Contains(errb.String(), "second signal") {
				t.Errorf("status %s: %s", rep.Status, errb.String())
			}
		})
	}
}

// hangingReceiver answers no request until the test ends.
func hangingReceiver(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var got atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv, &got
}

// Under a fake systemd (NOTIFY_SOCKET, WATCHDOG_USEC) the watchdog pings
// while the graph is live and stops pinging once a node has been stuck in
// one call (an HTTP attempt that never ends) longer than --watchdog-stall,
// logging the node once.
func TestWatchdogStopsPingingForAStuckNode(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "n.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv, got := hangingReceiver(t)
	g := `version: 2
nodes:
  - {id: tick, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.05, count: 0}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.http:HttpJsonSink", config: {url: "` + srv.URL + `", timeout_sec: 120, retry_max_attempts: 1}}
edges:
  - {from: tick, to: out}
`
	p, _, errb := startGraphEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000", "WATCHDOG_PID="}, g,
		"--watchdog-stall", "500ms", "--stop-timeout", "200ms")
	read := func(within time.Duration) (string, bool) {
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(within))
		n, err := conn.Read(buf)
		return string(buf[:n]), err == nil
	}
	pings := 0
	deadline := time.Now().Add(20 * time.Second)
	for pings == 0 || got.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pings %d, requests %d: %s", pings, got.Load(), errb.String())
		}
		if m, ok := read(100 * time.Millisecond); ok && m == "WATCHDOG=1" {
			pings++
		}
	}
	for !strings.Contains(errb.String(), "liveness lost") {
		if time.Now().After(deadline) {
			t.Fatalf("liveness never lost: %s", errb.String())
		}
		read(50 * time.Millisecond)
	}
	for { // what was sent before the loss
		if _, ok := read(150 * time.Millisecond); !ok {
			break
		}
	}
	if m, ok := read(time.Second); ok {
		t.Fatalf("got %q during 1 s (10 ping periods) with a node stuck in its call", m)
	}
	if !strings.Contains(errb.String(), "stuck_node=out") || strings.Count(errb.String(), "liveness lost") != 1 {
		t.Errorf("the loss is not logged once naming the node: %s", errb.String())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := exitWithin(t, p, 20*time.Second, errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
