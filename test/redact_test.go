package test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSecretsStayMasked runs graphs whose URLs carry a password and a
// token, as a user would, and greps everything the run prints: packets on
// stdout (meta.http.url), logs and errors on stderr, the JSON report. The
// receiver still gets the real secrets; every output shows the one masked
// form.
func TestSecretsStayMasked(t *testing.T) {
	var mu sync.Mutex
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		mu.Lock()
		defer mu.Unlock()
		got = u + ":" + p + "?" + r.URL.RawQuery
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "http.yaml"), []byte(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
  - {id: post, kind: node, plugin: "schnitzel_stream.nodes.http:HttpJsonSink", config: {url: "http://ops:pw9x@`+host+`/events?token=tk9x&x=1", forward: true}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: src, to: post}
  - {from: post, to: out}
`), 0o644)
	r := run(t, dir, nil, "--graph", "http.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	mu.Lock()
	if got != "ops:pw9x?token=tk9x&x=1" {
		t.Errorf("receiver got %q, want the real credentials", got)
	}
	mu.Unlock()
	if !strings.Contains(r.stdout, "http://***:***@"+host+"/events?token=***&x=1") {
		t.Errorf("meta.http.url not in the masked form:\n%s", r.stdout)
	}
	noSecret(t, r.stdout+r.stderr)

	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed: the RTSP half needs it")
	}
	os.WriteFile(filepath.Join(dir, "rtsp.yaml"), []byte(`version: 2
nodes:
  - {id: cam, kind: source, plugin: "schnitzel_stream.packs.vision.nodes:OpenCvRtspSource", config: {url: "rtsp://admin:pw9x@127.0.0.1:1/live?token=tk9x", reconnect: false}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: cam, to: out}
`), 0o644)
	r = run(t, dir, nil, "--graph", "rtsp.yaml", "--report-json")
	if r.code == 0 {
		t.Fatalf("a camera nobody serves opened: %s", r.stderr)
	}
	if !strings.Contains(r.stdout+r.stderr, "rtsp://***:***@127.0.0.1:1/live?token=***") {
		t.Errorf("the masked URL is not named:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	noSecret(t, r.stdout+r.stderr)
}

func noSecret(t *testing.T, out string) {
	t.Helper()
	for _, s := range []string{"pw9x", "tk9x", "ops:", "admin:"} {
		if strings.Contains(out, s) {
			t.Errorf("%q leaked:\n%s", s, out)
		}
	}
}
