package test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A run that ends degraded exits 0 by default (upstream) and 3 with
// --fail-on-degraded, so a script or CI job can tell.
func TestFailOnDegraded(t *testing.T) {
	dir := t.TempDir()
	// Every POST fails: nothing listens on port 1.
	g := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{kind: demo, payload: {n: 1}}]}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.http:HttpJsonSink", config: {url: "http://127.0.0.1:1/x", retry_max_attempts: 1, timeout_sec: 1}}
edges:
  - {from: src, to: out}
`
	if err := os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(g), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, dir, nil, "--graph", "g.yaml", "--report-json"); r.code != 0 || !strings.Contains(r.stdout, `"status":"degraded"`) {
		t.Fatalf("without the flag: exit %d (want 0), stdout %s\n%s", r.code, r.stdout, r.stderr)
	}
	r := run(t, dir, nil, "--graph", "g.yaml", "--report-json", "--fail-on-degraded")
	if r.code != 3 || !strings.Contains(r.stderr, "--fail-on-degraded") || !strings.Contains(r.stdout, `"status":"degraded"`) {
		t.Fatalf("with the flag: exit %d (want 3), stdout %s\n%s", r.code, r.stdout, r.stderr)
	}
	// A healthy run stays 0 with the flag.
	ok := strings.Replace(g, `plugin: "schnitzel_stream.nodes.http:HttpJsonSink", config: {url: "http://127.0.0.1:1/x", retry_max_attempts: 1, timeout_sec: 1}`, `plugin: "schnitzel_stream.nodes.dev:PrintSink"`, 1)
	os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte(ok), 0o644)
	if r := run(t, dir, nil, "--graph", "ok.yaml", "--fail-on-degraded"); r.code != 0 {
		t.Fatalf("healthy run with the flag: exit %d\n%s", r.code, r.stderr)
	}
}

// /healthz and /readyz beside /metrics: both 200 while the graph runs.
func TestHealthAndReadyProbes(t *testing.T) {
	g := `version: 2
nodes:
  - {id: tick, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.05, count: 0}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: tick, to: out}
`
	p, _, errb := startGraph(t, g)
	m := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", errb.String())
	}
	get := func(path string) (int, string) {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(path); code != http.StatusOK {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := exitWithin(t, p, 20*time.Second, errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
