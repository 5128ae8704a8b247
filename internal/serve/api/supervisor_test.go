package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const tickerGraph = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.005}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:Identity"}
edges:
  - {from: src, to: out}
`

// TestAgainstSupervisor drives the real *serve.Supervisor through the API
// over loopback: apply, running, report, tap, invalid reload keeps the old
// version, stop, delete.
func TestAgainstSupervisor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real graphs")
	}
	dir := t.TempDir()
	al, err := audit.Open(filepath.Join(dir, "audit.jsonl"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	reg := plugin.NewRegistry()
	dev.Register(reg)
	sup, err := serve.New(serve.Config{GraphsDir: filepath.Join(dir, "graphs"), StateDir: filepath.Join(dir, "state"),
		Engine: engine.Options{Registry: reg, Getenv: func(string) string { return "" }}, WatchInterval: -1, Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		sup.Close()
	}()

	a := New(sup, Config{Token: testToken, Audit: al})
	srv := httptest.NewServer(a)
	defer srv.Close()
	e := &env{t: t, srv: srv, api: a, audit: al}

	if rp := e.put("tick", tickerGraph); rp.code != 201 {
		t.Fatalf("put: %d %s", rp.code, rp.body)
	}
	poll.Until(t, 20*time.Second, "the graph running", func() bool {
		rp := e.do("GET", "/api/v1/graphs/tick", "", auth())
		return rp.code == 200 && rp.json["state"] == "running"
	})

	s, rp := e.openTapOn(t, "tick", "node=src&limit=3")
	if s == nil {
		t.Fatalf("tap: %d %s", rp.code, rp.body)
	}
	defer s.close()
	for range 3 {
		ev := s.next(t)
		var pkt map[string]any
		if ev.name != "packet" || json.Unmarshal([]byte(ev.data), &pkt) != nil {
			t.Fatalf("tap event %+v", ev)
		}
	}
	if ev := s.next(t); ev.name != "end" || !strings.Contains(ev.data, "limit") {
		// A dropped event may come first when the reader lagged.
		if ev.name != "dropped" || s.next(t).name != "end" {
			t.Fatalf("end %+v", ev)
		}
	}

	poll.Until(t, 20*time.Second, "a report with packets", func() bool {
		rp := e.do("GET", "/api/v1/graphs/tick/report", "", auth())
		return rp.code == 200 && strings.Contains(string(rp.body), `"metrics"`)
	})

	rp = e.put("tick", badGraph)
	if rp.code != 422 || kind(rp) != "invalid_graph" {
		t.Fatalf("invalid reload: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs/tick", "", auth()); rp.json["state"] != "running" || rp.json["yaml"] != tickerGraph {
		t.Fatalf("after an invalid reload: %s", rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs/tick/tap?node=nope", "", auth()); rp.code != 404 {
		t.Errorf("tap unknown node: %d %s", rp.code, rp.body)
	}
	if rp := e.do("POST", "/api/v1/graphs/tick/stop", "", auth()); rp.code != 200 {
		t.Fatalf("stop: %d %s", rp.code, rp.body)
	}
	poll.Until(t, 20*time.Second, "the graph stopped", func() bool {
		rp := e.do("GET", "/api/v1/graphs/tick", "", auth())
		return rp.json["state"] == "stopped"
	})
	if rp := e.do("GET", "/api/v1/graphs/tick/tap?node=src", "", auth()); rp.code != 409 {
		t.Errorf("tap a stopped graph: %d %s", rp.code, rp.body)
	}
	if rp := e.do("DELETE", "/api/v1/graphs/tick", "", auth()); rp.code != 200 {
		t.Fatalf("delete: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs/tick", "", auth()); rp.code != 404 {
		t.Errorf("after delete: %d", rp.code)
	}
	if rp := e.do("GET", "/metrics", "", auth()); rp.code != 200 {
		t.Errorf("metrics: %d", rp.code)
	}
	for _, act := range []string{"graph.apply", "graph.stop", "graph.delete"} {
		if len(e.find(act, "")) == 0 {
			t.Errorf("no %s in the audit", act)
		}
	}
}
