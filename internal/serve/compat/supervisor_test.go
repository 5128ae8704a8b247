package compat_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/internal/serve/compat"
	"github.com/schnitzel-stream/schnitzel/internal/serve/fleet"
	"github.com/schnitzel-stream/schnitzel/nodes/all"
)

const tickerTemplate = `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config:
      interval_sec: 0.02
      source_id: ${oc.env:SS_STREAM_ID}
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config:
      prefix: ${oc.env:SS_CAMERA_ID}
edges:
  - {from: src, to: out}
`

// startServe runs a real Supervisor on dir behind api.New plus the compat
// routes; stop ends it (bounded drain) and releases the state lock.
func startServe(t *testing.T, dir string) (e *env, stop func()) {
	t.Helper()
	al, err := audit.Open(filepath.Join(dir, "state", "audit.jsonl"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.Options{Registry: all.Registry(), Getenv: func(string) string { return "" }, Stdout: io.Discard}
	sup, err := serve.New(serve.Config{GraphsDir: filepath.Join(dir, "graphs"), StateDir: filepath.Join(dir, "state"),
		Engine: eng, WatchInterval: -1, Audit: al, DrainTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	srv := api.New(sup, api.Config{Token: token, Audit: al})
	m := fleet.New(sup, fleet.Options{Engine: eng})
	srv.Handle(compat.Routes(srv, sup, m, compat.Config{GraphsDir: filepath.Join(dir, "graphs"), StateDir: filepath.Join(dir, "state"),
		Engine: eng, Presets: os.DirFS("../../../configs/graphs"), Audit: al})...)
	ts := httptest.NewServer(srv)
	e = &env{t: t, url: ts.URL, log: al, graphs: filepath.Join(dir, "graphs"), state: filepath.Join(dir, "state")}
	return e, func() {
		ts.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		sup.Close()
		al.Close()
	}
}

// The fleet as in-process graphs under the real Supervisor: started from
// our CLI's body, running with their own variables, counted by the
// monitor from live state, kept across a restart of serve (origin fleet
// persisted), stopped through upstream's body.
func TestFleetAgainstSupervisor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real graphs")
	}
	dir := t.TempDir()
	e, stop := startServe(t, dir)
	fleetYAML := "streams:\n  - id: cam1\n    input: {type: plugin, plugin: x:Y}\n  - id: cam2\n    input: {type: plugin, plugin: x:Y}\n"
	body, _ := json.Marshal(map[string]any{"fleet_yaml": fleetYAML, "template_yaml": tickerTemplate, "streams": []string{}})
	a := e.do("POST", "/api/v1/fleet/start", string(body))
	if a.code != 200 || a.m["ok"] != true {
		t.Fatalf("start: %d %s", a.code, a.raw)
	}
	poll.Until(t, 20*time.Second, "both streams counting packets", func() bool {
		a := e.do("GET", "/api/v1/monitor/snapshot", "")
		snap, _ := a.data()["snapshot"].(map[string]any)
		rows, _ := snap["streams"].([]any)
		if len(rows) != 2 || snap["running_total"] != float64(2) {
			return false
		}
		for _, r := range rows {
			if n, _ := r.(map[string]any)["events_total"].(float64); n < 3 {
				return false
			}
		}
		return true
	})
	a = e.do("GET", "/api/v1/graphs/fleet.cam2", "")
	if a.code != 200 || a.m["origin"] != "fleet" || a.m["env"].(map[string]any)["SS_CAMERA_ID"] != "cam2" {
		t.Fatalf("fleet.cam2: %s", a.raw)
	}
	stop()

	e, stop = startServe(t, dir)
	defer stop()
	poll.Until(t, 20*time.Second, "the fleet back after a restart", func() bool {
		a := e.do("GET", "/api/v1/fleet/status", "")
		return a.data()["running"] == float64(2)
	})
	a = e.do("POST", "/api/v1/fleet/stop", `{}`)
	envelope(t, a, 200, "ok")
	if a.data()["stopped_count"] != float64(2) {
		t.Fatalf("stop: %s", a.raw)
	}
	a = e.do("GET", "/api/v1/graphs", "")
	if gs := a.m["graphs"].([]any); len(gs) != 0 {
		t.Fatalf("graphs left: %s", a.raw)
	}
}

// A preset without max_events is the supervised graph preset.<id>.
func TestPresetAgainstSupervisor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real graphs")
	}
	e, stop := startServe(t, t.TempDir())
	defer stop()
	a := e.do("POST", "/api/v1/presets/inproc_demo/run", `{}`)
	envelope(t, a, 200, "ok")
	poll.Until(t, 20*time.Second, "inproc_demo ran out of input", func() bool {
		a := e.do("GET", "/api/v1/graphs/preset.inproc_demo", "")
		return a.code == 200 && a.m["origin"] == "preset" && a.m["state"] == "stopped" && a.m["report"] != nil
	})
}
