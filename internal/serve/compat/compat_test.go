package compat_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/internal/serve/compat"
	"github.com/schnitzel-stream/schnitzel/internal/serve/fleet"
	"github.com/schnitzel-stream/schnitzel/internal/serve/servetest"
	"github.com/schnitzel-stream/schnitzel/nodes/all"
)

const token = "s3cret-token"

type env struct {
	t             *testing.T
	url           string
	b             *servetest.Backend
	log           *audit.Log
	graphs, state string
}

func engineOpts() engine.Options {
	return engine.Options{Registry: all.Registry(), Getenv: func(string) string { return "" }}
}

func setup(t *testing.T, mod func(*compat.Config)) *env {
	t.Helper()
	graphs, state := t.TempDir(), t.TempDir()
	alog, err := audit.Open(filepath.Join(state, "audit.jsonl"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	b := servetest.New(engineOpts())
	srv := api.New(b, api.Config{Token: token, Audit: alog})
	m := fleet.New(b, fleet.Options{Engine: engineOpts()})
	cfg := compat.Config{GraphsDir: graphs, StateDir: state, Engine: engineOpts(), Presets: os.DirFS("../../../configs/graphs"),
		Audit: alog, RunTimeout: 20 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	srv.Handle(compat.Routes(srv, b, m, cfg)...)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{t: t, url: ts.URL, b: b, log: alog, graphs: graphs, state: state}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type answer struct {
	code int
	hdr  http.Header
	raw  []byte
	m    map[string]any
}

func (a answer) data() map[string]any {
	d, _ := a.m["data"].(map[string]any)
	return d
}

func (a answer) errKind() string {
	e, _ := a.m["error"].(map[string]any)
	k, _ := e["kind"].(string)
	return k
}

func (e *env) do(method, path, body string, hdr ...string) answer {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, hdr: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.m)
	return a
}

// envelope checks upstream's envelope: exactly its keys (plus detail on
// a request error, streams on fleet status), schema_version 1, the
// request id as sent back in X-Request-Id, a UTC ISO time.
func envelope(t *testing.T, a answer, code int, status string, extra ...string) {
	t.Helper()
	if a.code != code {
		t.Fatalf("HTTP %d, want %d: %s", a.code, code, a.raw)
	}
	want := append([]string{"data", "error", "request_id", "schema_version", "status", "ts"}, extra...)
	if code >= 400 {
		want = append(want, "detail")
	}
	var keys []string
	for k := range a.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("envelope keys %v, want %v: %s", keys, want, a.raw)
	}
	if a.m["schema_version"] != float64(1) || a.m["status"] != status {
		t.Fatalf("schema_version %v status %v, want 1 %s: %s", a.m["schema_version"], a.m["status"], status, a.raw)
	}
	if id := a.m["request_id"]; id == "" || id != a.hdr.Get("X-Request-Id") {
		t.Fatalf("request_id %v, X-Request-Id %q", id, a.hdr.Get("X-Request-Id"))
	}
	if _, err := time.Parse("2006-01-02T15:04:05.999999-07:00", a.m["ts"].(string)); err != nil {
		t.Fatalf("ts: %v", err)
	}
	if status == "ok" && a.m["error"] != nil {
		t.Fatalf("status ok with error %v", a.m["error"])
	}
	if status == "error" {
		e, _ := a.m["error"].(map[string]any)
		if e["kind"] == nil || e["reason"] == nil {
			t.Fatalf("error %v lacks kind/reason", a.m["error"])
		}
	}
}

func hasKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Fatalf("%s lacks %q: %v", what, k, m)
		}
	}
}

// auditHas waits for nothing (the audit line is synced before the answer)
// and returns the last event of action.
func (e *env) lastAudit(action string) *audit.Event {
	evs, err := e.log.Tail(time.Time{}, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Action == action {
			return &evs[i]
		}
	}
	return nil
}

// Upstream's own test bodies answered in upstream's envelope and fields.
func TestUpstreamFixtures(t *testing.T) {
	e := setup(t, nil)

	// test_mutating_endpoint_allowed_with_local_override: a bounded run
	// of inproc_demo; the audit has preset.run.
	a := e.do("POST", "/api/v1/presets/inproc_demo/run", fixture(t, "preset_run_inproc_demo.json"))
	envelope(t, a, 200, "ok")
	d := a.data()
	hasKeys(t, "preset run", d, "preset_id", "validate_only", "command", "graph", "returncode")
	if d["returncode"] != float64(0) || d["preset_id"] != "inproc_demo" || d["validate_only"] != false {
		t.Fatalf("preset run data %v", d)
	}
	if !strings.Contains(d["stdout_tail"].(string), "DEV ") {
		t.Fatalf("stdout_tail %q lacks the PrintSink's lines", d["stdout_tail"])
	}
	if ev := e.lastAudit("preset.run"); ev == nil || ev.Status != "ok" || ev.Target != "inproc_demo" {
		t.Fatalf("audit preset.run: %+v", ev)
	}
	a = e.do("GET", "/api/v1/governance/audit?limit=10", "")
	envelope(t, a, 200, "ok")
	hasKeys(t, "audit tail", a.data(), "audit_path", "count", "events")
	evs := a.data()["events"].([]any)
	found := false
	for _, ev := range evs {
		m := ev.(map[string]any)
		hasKeys(t, "audit event", m, "event_id", "ts", "actor", "action", "target", "status", "reason", "request_id", "meta")
		found = found || m["action"] == "preset.run"
	}
	if !found {
		t.Fatalf("no preset.run in %s", a.raw)
	}

	// test_preset_run_forwards_yolo_override_fields: that preset's graph
	// is not shipped; a clear 404 in the envelope, audited.
	a = e.do("POST", "/api/v1/presets/file_yolo_headless/run", fixture(t, "preset_run_file_yolo_headless.json"))
	envelope(t, a, 404, "error")
	if !strings.Contains(a.m["detail"].(string), "not shipped") {
		t.Fatalf("detail %v", a.m["detail"])
	}
	if ev := e.lastAudit("preset.run"); ev.Status != "refused" || ev.Target != "file_yolo_headless" {
		t.Fatalf("audit %+v", ev)
	}

	// test_fleet_stop_contract_and_audit_with_local_override.
	a = e.do("POST", "/api/v1/fleet/stop", fixture(t, "fleet_stop.json"))
	envelope(t, a, 200, "ok")
	hasKeys(t, "fleet stop", a.data(), "log_dir", "stopped_count", "lines")
	if a.data()["stopped_count"] != float64(0) {
		t.Fatalf("stopped_count %v", a.data()["stopped_count"])
	}
	if e.lastAudit("fleet.stop") == nil {
		t.Fatal("fleet.stop not audited")
	}

	// test_policy_snapshot_endpoint.
	a = e.do("GET", "/api/v1/governance/policy-snapshot", "")
	envelope(t, a, 200, "ok")
	d = a.data()
	hasKeys(t, "policy", d, "security_mode", "token_required", "mutation_auth_mode", "local_mutation_override_enabled",
		"allowed_plugin_prefixes", "allow_all_plugins", "audit_path", "audit_retention")
	// D-API-9: graph/run is listed as mutating, from the route table.
	mut := d["mutating_endpoints"].([]any)
	for _, want := range []string{"POST /api/v1/graph/run", "POST /api/v1/fleet/start", "POST /api/v1/fleet/stop", "POST /api/v1/presets/{preset_id}/run"} {
		if !slices.Contains(mut, any(want)) {
			t.Errorf("mutating_endpoints %v lacks %s", mut, want)
		}
	}
	if d["token_required"] != true || d["local_mutation_override_enabled"] != false {
		t.Errorf("policy %v", d)
	}
	// The route list is the server's own table: ours and these.
	seen := map[string]map[string]any{}
	for _, r := range d["routes"].([]any) {
		m := r.(map[string]any)
		seen[m["method"].(string)+" "+m["path"].(string)] = m
	}
	if h := seen["GET /api/v1/health"]; h == nil || h["auth"] != false {
		t.Errorf("health route %v", h)
	}
	if p := seen["PUT /api/v1/graphs/{name}"]; p == nil || p["mutation_checks"] != true || p["auth"] != true {
		t.Errorf("PUT graphs route %v", p)
	}
	if g := seen["POST /api/v1/graph/validate"]; g == nil || g["mode"] != "read" || g["mutation_checks"] != true {
		t.Errorf("graph/validate route %v", g)
	}

	// test_graph_validate_endpoint_reports_validation_error: the empty
	// spec; with our validator, its verdict, either way in the envelope.
	a = e.do("POST", "/api/v1/graph/validate", fixture(t, "graph_validate_empty.json"))
	if a.m["status"] == "ok" {
		envelope(t, a, 200, "ok")
	} else {
		envelope(t, a, 200, "error")
		if a.errKind() != "graph_validation_failed" {
			t.Fatalf("kind %s", a.errKind())
		}
	}
	hasKeys(t, "validation", a.data()["validation"].(map[string]any), "ok", "error", "node_count", "edge_count")

	// test_graph_run_allowed_with_local_override_and_audit (empty spec).
	a = e.do("POST", "/api/v1/graph/run", fixture(t, "graph_run_empty.json"))
	hasKeys(t, "graph run", a.data(), "returncode", "command", "temp_spec_path", "stdout_tail", "stderr_tail")
	if e.lastAudit("graph.run") == nil {
		t.Fatal("graph.run not audited")
	}

	// test_graph_from_profile_endpoint_returns_spec: no wizard profiles.
	a = e.do("POST", "/api/v1/graph/from-profile", fixture(t, "graph_from_profile.json"))
	envelope(t, a, 404, "error")
	a = e.do("GET", "/api/v1/graph/profiles", "")
	envelope(t, a, 200, "ok")
	if a.data()["count"] != float64(0) {
		t.Fatalf("profiles %v", a.data())
	}
}

// The console's block editor default graph runs in-process: its print
// sink's line comes back, nothing is written to disk.
func TestGraphRunEditorDefault(t *testing.T) {
	e := setup(t, nil)
	for _, f := range []string{"graph_run_editor_default.json", "graph_run_editor_canvas.json"} {
		a := e.do("POST", "/api/v1/graph/validate", fixture(t, f))
		envelope(t, a, 200, "ok")
		v := a.data()["validation"].(map[string]any)
		if v["ok"] != true || v["node_count"] != float64(2) || v["edge_count"] != float64(1) {
			t.Fatalf("%s: validation %v", f, v)
		}
		a = e.do("POST", "/api/v1/graph/run", fixture(t, f))
		envelope(t, a, 200, "ok")
		d := a.data()
		if d["returncode"] != float64(0) || d["temp_spec_path"] != "" || !strings.Contains(d["stdout_tail"].(string), "EDITOR ") ||
			!strings.Contains(d["stdout_tail"].(string), "hello from block editor") {
			t.Fatalf("%s: run data %v", f, d)
		}
		rep := d["report"].(map[string]any)
		if rep["status"] != "ok" {
			t.Fatalf("report %v", rep)
		}
	}
	if ev := e.lastAudit("graph.run"); ev == nil || ev.Status != "ok" || ev.Target != "inline_spec" || ev.Meta["returncode"] != float64(0) {
		t.Fatalf("audit %+v", ev)
	}
	ents, _ := os.ReadDir(e.graphs)
	if len(ents) != 0 {
		t.Fatalf("graph/run wrote %v into the graphs dir", ents)
	}
}

const tickerSpec = `{"spec": {"nodes": [{"id": "t", "kind": "source", "plugin": "schnitzel_stream.nodes.dev:TickerSource", "config": {"interval_sec": 0.05}},
	{"id": "out", "kind": "sink", "plugin": "schnitzel_stream.nodes.dev:PrintSink"}], "edges": [{"from": "t", "to": "out"}]}, "max_events": %d}`

// A run is bounded by max_events and by the timeout (upstream: 124).
func TestGraphRunBounds(t *testing.T) {
	e := setup(t, func(c *compat.Config) { c.RunTimeout = 300 * time.Millisecond; c.MaxRunEvents = 1000 })
	a := e.do("POST", "/api/v1/graph/run", strings.Replace(tickerSpec, "%d", "3", 1))
	envelope(t, a, 200, "ok")
	if rep := a.data()["report"].(map[string]any); rep["metrics"].(map[string]any)["packets.source_emitted_total"] != float64(3) {
		t.Fatalf("report %v", rep)
	}
	a = e.do("POST", "/api/v1/graph/run", strings.Replace(tickerSpec, "%d", "1000", 1))
	envelope(t, a, 200, "error")
	if a.data()["returncode"] != float64(124) || a.errKind() != "graph_run_failed" || !strings.Contains(a.m["error"].(map[string]any)["reason"].(string), "timed out") {
		t.Fatalf("timeout answer %s", a.raw)
	}
	// D-API-10: 0 is not silently 30; negative and too large are refused.
	for _, n := range []string{"0", "-1", "1001"} {
		a = e.do("POST", "/api/v1/graph/run", strings.Replace(tickerSpec, "%d", n, 1))
		envelope(t, a, 400, "error")
		if a.errKind() != "request_invalid" {
			t.Fatalf("max_events %s: %s", n, a.raw)
		}
	}
	if ev := e.lastAudit("graph.run"); ev.Status != "refused" {
		t.Fatalf("refused run not audited: %+v", ev)
	}
}

// An invalid spec is upstream's domain failure (HTTP 200, status error)
// with our diagnostics; a malformed body is a 422 in the envelope.
func TestGraphValidateErrors(t *testing.T) {
	e := setup(t, nil)
	a := e.do("POST", "/api/v1/graph/validate", `{"spec": {"nodes": [{"id": "s", "kind": "source", "plugin": "schnitzel_stream.nodes.dev:NoSuch"}]}}`)
	envelope(t, a, 200, "error")
	if a.errKind() != "graph_validation_failed" || len(a.data()["errors"].([]any)) == 0 {
		t.Fatalf("%s", a.raw)
	}
	diag := a.data()["errors"].([]any)[0].(map[string]any)
	hasKeys(t, "diag", diag, "file", "line", "severity", "message")
	for _, body := range []string{`{"spec": {"version": 3}}`, `{"spec": {"nodes": [{"plugin": "x"}]}}`, `{"spec": {"edges": [{"src": "a"}]}}`} {
		a = e.do("POST", "/api/v1/graph/validate", body)
		envelope(t, a, 200, "error")
	}
	for _, body := range []string{`{}`, `{"spec": 5}`, `[1]`, `{"spec": {"nodes": 5}`} {
		a = e.do("POST", "/api/v1/graph/validate", body)
		envelope(t, a, 422, "error")
	}
}

// D-WIZ-1 / D-API-13: a spec's ${oc.env:...} never reads the server's
// environment, so a secret cannot come back in any answer.
func TestInlineSpecNeverReadsEnv(t *testing.T) {
	t.Setenv("SECRET_X", "topsecret123")
	t.Setenv("SS_SECRET", "topsecret456")
	e := setup(t, nil)
	for _, name := range []string{"SECRET_X", "SS_SECRET"} {
		spec := `{"spec": {"nodes": [{"id": "src", "kind": "source", "plugin": "schnitzel_stream.nodes.dev:StaticSource",
			"config": {"packets": [{"kind": "demo", "payload": {"v": "${oc.env:` + name + `}"}}]}},
			{"id": "out", "kind": "sink", "plugin": "${oc.env:` + name + `,schnitzel_stream.nodes.dev:PrintSink}"}],
			"edges": [{"src": "src", "dst": "out"}]}, "max_events": 5}`
		for _, path := range []string{"/api/v1/graph/validate", "/api/v1/graph/run"} {
			a := e.do("POST", path, spec)
			if bytes.Contains(a.raw, []byte("topsecret")) {
				t.Fatalf("%s leaked %s: %s", path, name, a.raw)
			}
			if a.m["status"] != "error" {
				t.Fatalf("%s: an unset variable without default passed: %s", path, a.raw)
			}
		}
	}
}

// The middleware guards the compat routes as ours: no token 401, a
// form-encoded POST 415 (D-API-1), a foreign Origin 403, a foreign Host
// 421 (D-API-2).
func TestCompatRoutesBehindMiddleware(t *testing.T) {
	e := setup(t, nil)
	body := fixture(t, "graph_run_editor_default.json")
	req, _ := http.NewRequest("POST", e.url+"/api/v1/graph/run", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	if a := e.do("POST", "/api/v1/graph/run", body, "Content-Type", "text/plain"); a.code != 415 {
		t.Fatalf("text/plain: %d", a.code)
	}
	if a := e.do("POST", "/api/v1/fleet/stop", `{}`, "Origin", "http://evil.example"); a.code != 403 {
		t.Fatalf("foreign origin: %d", a.code)
	}
	if a := e.do("GET", "/api/v1/fleet/status", "", "Host", "evil.example"); a.code != 421 {
		t.Fatalf("foreign host: %d", a.code)
	}
	if c := e.b.Calls(); len(c) != 0 {
		t.Fatalf("backend called: %+v", c)
	}
}

func TestPresets(t *testing.T) {
	e := setup(t, nil)
	a := e.do("GET", "/api/v1/presets", "")
	envelope(t, a, 200, "ok")
	rows := a.data()["presets"].([]any)
	ids := map[string]map[string]any{}
	for _, r := range rows {
		m := r.(map[string]any)
		hasKeys(t, "preset", m, "preset_id", "experimental", "graph", "description", "available")
		ids[m["preset_id"].(string)] = m
	}
	if len(rows) != 3 || a.data()["count"] != float64(3) || ids["inproc_demo"]["available"] != true || ids["webcam_frames"]["available"] != false {
		t.Fatalf("presets %s", a.raw)
	}
	a = e.do("GET", "/api/v1/presets?experimental=true", "")
	if a.data()["count"] != float64(6) {
		t.Fatalf("experimental presets %s", a.raw)
	}
	envelope(t, e.do("GET", "/api/v1/presets?experimental=maybe", ""), 422, "error")

	// validate: in-process, not audited.
	a = e.do("POST", "/api/v1/presets/inproc_demo/validate", `{}`)
	envelope(t, a, 200, "ok")
	if a.data()["validate_only"] != true || a.data()["returncode"] != float64(0) {
		t.Fatalf("validate %v", a.data())
	}
	// Upstream's checks, in its order, and D-API-10's.
	cases := []struct {
		path, body string
		code       int
	}{
		{"/api/v1/presets/nope/run", `{}`, 404},
		{"/api/v1/presets/file_yolo_view/run", `{}`, 400},                              // experimental guard
		{"/api/v1/presets/webcam_frames/validate", `{}`, 404},                          // graph not shipped
		{"/api/v1/presets/inproc_demo/run", `{"max_events": 0}`, 400},                  // D-API-10
		{"/api/v1/presets/inproc_demo/run", `{"camera_index": -1}`, 400},               // D-API-10
		{"/api/v1/presets/inproc_demo/run", `{"yolo_conf": 1.5}`, 400},                 // D-API-10
		{"/api/v1/presets/inproc_demo/run", `{"yolo_max_det": 0}`, 400},                // D-API-10
		{"/api/v1/presets/inproc_demo/run", `{"loop": "sometimes"}`, 400},              // upstream: 422
		{"/api/v1/presets/inproc_demo/run", `{"max_events": "five"}`, 422},             // a type error
		{"/api/v1/presets/inproc_demo/run", `{"input_path": "/etc/passwd"}`, 403},      // D-API-4
		{"/api/v1/presets/inproc_demo/run", `{"model_path": "../../etc/passwd"}`, 403}, // D-API-4
	}
	for _, c := range cases {
		a := e.do("POST", c.path, c.body)
		envelope(t, a, c.code, "error")
	}
	if c := e.b.Calls(); len(c) != 0 {
		t.Fatalf("a refused preset reached the backend: %+v", c)
	}
}

// Without max_events a preset becomes a supervised graph preset.<id>,
// with its variables and origin preset, that the API can stop.
func TestPresetRunUnderBackend(t *testing.T) {
	e := setup(t, nil)
	os.WriteFile(filepath.Join(e.graphs, "clip.mp4"), []byte("x"), 0o600)
	a := e.do("POST", "/api/v1/presets/file_frames/run", `{"input_path": "clip.mp4", "loop": "true"}`)
	envelope(t, a, 200, "ok")
	if a.data()["graph_name"] != "preset.file_frames" || a.data()["state"] != "running" {
		t.Fatalf("data %v", a.data())
	}
	calls := e.b.Calls()
	if len(calls) != 1 || calls[0].Name != "preset.file_frames" || calls[0].Opts.Origin != "preset" {
		t.Fatalf("calls %+v", calls)
	}
	env := calls[0].Opts.Env
	if env["SS_INPUT_PATH"] != filepath.Join(realpath(t, e.graphs), "clip.mp4") || env["SS_INPUT_LOOP"] != "true" {
		t.Fatalf("env %v", env)
	}
	if ev := e.lastAudit("preset.run"); ev.Status != "ok" || ev.Target != "file_frames" {
		t.Fatalf("audit %+v", ev)
	}
}

func realpath(t *testing.T, p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Our CLI's fleet bodies: the files' text in, our JSON out; status
// answers both clients at once.
func TestOurFleetRoutes(t *testing.T) {
	e := setup(t, nil)
	body, _ := json.Marshal(map[string]any{"fleet_yaml": fixture(t, "fleet.yaml"), "template_yaml": "", "streams": []string{"stream01", "stream04"}})
	a := e.do("POST", "/api/v1/fleet/start", string(body))
	if a.code != 200 || a.m["ok"] != true {
		t.Fatalf("start: %d %s", a.code, a.raw)
	}
	streams := a.m["streams"].([]any)
	if len(streams) != 2 || streams[0].(map[string]any)["graph"] != "fleet.stream01" || streams[1].(map[string]any)["state"] != "running" {
		t.Fatalf("start streams %s", a.raw)
	}
	if ev := e.lastAudit("fleet.start"); ev == nil || ev.Status != "ok" {
		t.Fatalf("audit %+v", ev)
	}
	calls := e.b.Calls()
	if calls[0].Opts.Env["SS_SOURCE_URL"] != "rtsp://127.0.0.1:8554/stream1" || calls[1].Opts.Env["SS_CAMERA_INDEX"] != "0" {
		t.Fatalf("envs %v %v", calls[0].Opts.Env, calls[1].Opts.Env)
	}

	// Status: upstream's envelope and our top-level streams.
	a = e.do("GET", "/api/v1/fleet/status", "")
	envelope(t, a, 200, "ok", "streams")
	hasKeys(t, "fleet status", a.data(), "log_dir", "running", "total", "lines")
	if a.data()["running"] != float64(2) || len(a.m["streams"].([]any)) != 2 {
		t.Fatalf("status %s", a.raw)
	}
	row := a.m["streams"].([]any)[0].(map[string]any)
	hasKeys(t, "status row", row, "id", "graph", "state", "status", "restarts", "last_error")

	// Monitor: rows from the backend's state.
	e.b.SetStatus("fleet.stream04", func(g *serve.GraphStatus) { g.State, g.LastError = serve.StateBackoff, "camera gone" })
	a = e.do("GET", "/api/v1/monitor/snapshot", "")
	envelope(t, a, 200, "ok")
	snap := a.data()["snapshot"].(map[string]any)
	hasKeys(t, "snapshot", snap, "ts", "log_dir", "streams_total", "running_total", "streams")
	if snap["streams_total"] != float64(2) || snap["running_total"] != float64(1) {
		t.Fatalf("snapshot %v", snap)
	}
	mrow := snap["streams"].([]any)[1].(map[string]any)
	hasKeys(t, "monitor row", mrow, "stream_id", "pid", "status", "events_total", "eps_window", "last_packet_ts", "last_log_age_sec", "last_error_tail")
	if mrow["stream_id"] != "stream04" || mrow["status"] != "backoff" || mrow["last_error_tail"] != "camera gone" || mrow["pid"] != nil {
		t.Fatalf("monitor row %v", mrow)
	}
	envelope(t, e.do("GET", "/api/v1/monitor/snapshot?window_sec=0", ""), 422, "error")

	// Stop one, then all.
	a = e.do("POST", "/api/v1/fleet/stop", `{"streams": ["stream01"]}`)
	if a.code != 200 || a.m["ok"] != true || len(a.m["streams"].([]any)) != 1 {
		t.Fatalf("stop: %s", a.raw)
	}
	a = e.do("POST", "/api/v1/fleet/stop", `{"streams": []}`)
	if a.code != 200 || len(a.m["streams"].([]any)) != 1 || len(e.b.List()) != 0 {
		t.Fatalf("stop all: %s, left %v", a.raw, e.b.List())
	}
	if ev := e.lastAudit("fleet.stop"); ev.Status != "ok" {
		t.Fatalf("audit %+v", ev)
	}
}

// Bad fleet files answer our error envelope with the fleet file's line
// (invalid_fleet) or the stream and the template's diagnostics
// (invalid_graph); nothing reaches the backend.
func TestOurFleetErrors(t *testing.T) {
	e := setup(t, nil)
	mk := func(fleetYAML, tmpl string) string {
		b, _ := json.Marshal(map[string]any{"fleet_yaml": fleetYAML, "template_yaml": tmpl})
		return string(b)
	}
	a := e.do("POST", "/api/v1/fleet/start", mk("streams:\n  - id: ok1\n    input: {type: rtsp, url: u}\n  - id: ../../etc\n", ""))
	if a.code != 422 || a.errKind() != "invalid_fleet" {
		t.Fatalf("traversal id: %d %s", a.code, a.raw)
	}
	probs := a.m["error"].(map[string]any)["details"].(map[string]any)["errors"].([]any)
	if p := probs[0].(map[string]any); p["line"] != float64(4) || p["field"] != "streams[1].id" {
		t.Fatalf("problem %v", p)
	}
	a = e.do("POST", "/api/v1/fleet/start", mk("streams:\n  - id: s1\n    input: {type: plugin, plugin: 'schnitzel_stream.nodes.dev:Nope'}\n", ""))
	if a.code != 422 || a.errKind() != "invalid_graph" {
		t.Fatalf("bad plugin: %d %s", a.code, a.raw)
	}
	det := a.m["error"].(map[string]any)["details"].(map[string]any)
	if s := det["streams"].([]any)[0].(map[string]any); s["id"] != "s1" || s["line"] != float64(2) || len(det["errors"].([]any)) == 0 {
		t.Fatalf("details %v", det)
	}
	a = e.do("POST", "/api/v1/fleet/start", `{"fleet_yaml": ""}`)
	if a.code != 400 {
		t.Fatalf("empty fleet: %d", a.code)
	}
	b, _ := json.Marshal(map[string]any{"fleet_yaml": fixture(t, "fleet.yaml"), "streams": []string{"stream01", "nope"}})
	a = e.do("POST", "/api/v1/fleet/start", string(b))
	if a.code != 400 || a.errKind() != "bad_request" || !strings.Contains(string(a.raw), `\"nope\" (not in the file)`) {
		t.Fatalf("unknown stream: %d %s", a.code, a.raw)
	}
	a = e.do("POST", "/api/v1/fleet/start", mk(fixture(t, "fleet.yaml"), "version: 2\nnodes: [\n"))
	if a.code != 422 {
		t.Fatalf("broken template: %d %s", a.code, a.raw)
	}
	if c := e.b.Calls(); len(c) != 0 {
		t.Fatalf("backend called: %+v", c)
	}
	if ev := e.lastAudit("fleet.start"); ev == nil || ev.Status != "refused" {
		t.Fatalf("audit %+v", ev)
	}
}

// Upstream's console body: paths resolve in the graphs dir; the default
// template is built in; extra_args and paths outside the graphs and
// state dirs (D-API-4), symlinks out included, are refused and audited.
func TestUpstreamFleetStart(t *testing.T) {
	e := setup(t, nil)
	a := e.do("POST", "/api/v1/fleet/start", fixture(t, "fleet_start_console.json"))
	envelope(t, a, 404, "error") // no configs/fleet.yaml in the graphs dir yet
	os.MkdirAll(filepath.Join(e.graphs, "configs"), 0o700)
	os.WriteFile(filepath.Join(e.graphs, "configs", "fleet.yaml"), []byte(fixture(t, "fleet.yaml")), 0o600)
	a = e.do("POST", "/api/v1/fleet/start", fixture(t, "fleet_start_console.json"))
	envelope(t, a, 200, "ok")
	d := a.data()
	hasKeys(t, "fleet start", d, "config", "graph_template", "log_dir", "lines")
	lines := d["lines"].([]any)
	if len(lines) != 5 || lines[4] != "done" || !strings.HasPrefix(lines[0].(string), "started stream01 graph=fleet.stream01") {
		t.Fatalf("lines %v", lines)
	}
	if !strings.Contains(d["graph_template"].(string), "built in") {
		t.Fatalf("template %v", d["graph_template"])
	}
	// stream03's relative path is joined to the fleet file's directory.
	for _, c := range e.b.Calls() {
		if c.Name == "fleet.stream03" && c.Opts.Env["SS_INPUT_PATH"] != filepath.Join(realpath(t, e.graphs), "configs", "data/samples/2048246-hd_1920_1080_24fps.mp4") {
			t.Fatalf("stream03 path %v", c.Opts.Env["SS_INPUT_PATH"])
		}
	}
	// Again: nothing changes.
	a = e.do("POST", "/api/v1/fleet/start", fixture(t, "fleet_start_console.json"))
	if l := a.data()["lines"].([]any); !strings.HasPrefix(l[0].(string), "already running: stream01") {
		t.Fatalf("second start lines %v", l)
	}
	// Status and stop through upstream's shapes.
	a = e.do("GET", "/api/v1/fleet/status", "")
	if a.data()["total"] != float64(4) {
		t.Fatalf("status %s", a.raw)
	}
	a = e.do("POST", "/api/v1/fleet/stop", `{}`)
	envelope(t, a, 200, "ok")
	if a.data()["stopped_count"] != float64(4) || len(e.b.List()) != 0 {
		t.Fatalf("stop %s", a.raw)
	}

	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "fleet.yaml"), []byte(fixture(t, "fleet.yaml")), 0o600)
	os.Symlink(filepath.Join(outside, "fleet.yaml"), filepath.Join(e.graphs, "link.yaml"))
	os.Symlink(outside, filepath.Join(e.graphs, "linkdir"))
	refused := []struct{ body, field string }{
		{`{"config": "../../../../etc/passwd"}`, "config"},
		{`{"config": "/etc/passwd"}`, "config"},
		{`{"config": "link.yaml"}`, "config"},
		{`{"config": "linkdir/fleet.yaml"}`, "config"},
		{`{"config": "configs/fleet.yaml", "graph_template": "/etc/hostname"}`, "graph_template"},
		{`{"config": "configs/fleet.yaml", "log_dir": "/tmp/schnitzel_stream_fleet_run"}`, "log_dir"},
	}
	for _, c := range refused {
		a := e.do("POST", "/api/v1/fleet/start", c.body)
		envelope(t, a, 403, "error")
		if a.errKind() != "forbidden" || !strings.Contains(a.m["detail"].(string), c.field) {
			t.Fatalf("%s: %s", c.body, a.raw)
		}
		if ev := e.lastAudit("fleet.start"); ev.Status != "refused" {
			t.Fatalf("audit %+v", ev)
		}
	}
	envelope(t, e.do("POST", "/api/v1/fleet/stop", `{"log_dir": "/var/log"}`), 403, "error")
	envelope(t, e.do("GET", "/api/v1/fleet/status?log_dir=/var/log", ""), 403, "error")
	envelope(t, e.do("GET", "/api/v1/monitor/snapshot?log_dir=../../", ""), 403, "error")
	// D-FLT-5.
	a = e.do("POST", "/api/v1/fleet/start", `{"config": "configs/fleet.yaml", "extra_args": "--graph /tmp/x.yaml"}`)
	envelope(t, a, 400, "error")
	// Upstream dropped unknown ids silently.
	a = e.do("POST", "/api/v1/fleet/start", `{"config": "configs/fleet.yaml", "streams": "stream01,ghost"}`)
	envelope(t, a, 400, "error")
	if !strings.Contains(a.m["detail"].(string), "ghost") {
		t.Fatalf("%s", a.raw)
	}
	// The state dir is a root too.
	os.WriteFile(filepath.Join(e.state, "fleet.yaml"), []byte("streams:\n  - id: sA\n    input: {type: webcam}\n"), 0o600)
	a = e.do("POST", "/api/v1/fleet/start", `{"config": "`+filepath.Join(e.state, "fleet.yaml")+`"}`)
	envelope(t, a, 200, "ok")
	if len(e.b.List()) != 1 {
		t.Fatalf("graphs %v", e.b.List())
	}
}

// D-AUD-2: a since that does not parse is refused, not ignored; limit is
// bounded as upstream's.
func TestAuditTailQuery(t *testing.T) {
	e := setup(t, nil)
	e.do("POST", "/api/v1/fleet/stop", `{}`)
	for _, q := range []string{"since=yesterday", "limit=0", "limit=1001", "limit=x"} {
		envelope(t, e.do("GET", "/api/v1/governance/audit?"+q, ""), 422, "error")
	}
	a := e.do("GET", "/api/v1/governance/audit?since=2000-01-01T00:00:00Z&limit=5", "")
	envelope(t, a, 200, "ok")
	if a.data()["count"].(float64) < 1 {
		t.Fatalf("%s", a.raw)
	}
	future := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05")
	a = e.do("GET", "/api/v1/governance/audit?since="+future, "")
	if a.data()["count"] != float64(0) {
		t.Fatalf("future since: %s", a.raw)
	}
}

// One stream failing to apply: the others run, the answer is upstream's
// domain failure naming it, and the audit line says error.
func TestUpstreamFleetStartPartialFailure(t *testing.T) {
	e := setup(t, nil)
	os.WriteFile(filepath.Join(e.state, "f.yaml"), []byte("streams:\n  - id: a\n    input: {type: webcam}\n  - id: b\n    input: {type: webcam, index: 1}\n"), 0o600)
	e.b.FailApply("fleet.a", io.ErrShortWrite)
	a := e.do("POST", "/api/v1/fleet/start", `{"config": "`+filepath.Join(e.state, "f.yaml")+`"}`)
	envelope(t, a, 200, "error")
	lines := a.data()["lines"].([]any)
	if a.errKind() != "runtime_failed" || !strings.HasPrefix(lines[0].(string), "failed a graph=fleet.a") || !strings.HasPrefix(lines[1].(string), "started b") {
		t.Fatalf("%s", a.raw)
	}
	if ev := e.lastAudit("fleet.start"); ev.Status != "error" || ev.Reason != "1 of 2 streams failed" {
		t.Fatalf("audit %+v", ev)
	}
}
