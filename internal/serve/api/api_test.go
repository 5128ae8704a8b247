package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
)

const testToken = "t0ken-abcdefghijklmnopqrstuvwxyz0123456789"

const goodGraph = `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.test:Src}
  - {id: out, kind: sink, plugin: schnitzel_stream.test:Sink}
edges:
  - {from: src, to: out}
`

// badGraph has an unknown plugin on line 4 and a dangling edge on line 6.
const badGraph = `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.test:Src}
  - {id: out, kind: sink, plugin: schnitzel_stream.test:Nope}
edges:
  - {from: src, to: nowhere}
`

type env struct {
	t     *testing.T
	srv   *httptest.Server
	api   *Server
	fb    *fakeBackend
	audit *audit.Log
	path  string
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	al, err := audit.Open(p, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	cfg := Config{Token: testToken, LoginCode: "login-code-123", Audit: al,
		Plugins: func() any { return []map[string]string{{"name": "schnitzel_stream.test:Src"}} }}
	if mod != nil {
		mod(&cfg)
	}
	fb := newFake()
	a := New(fb, cfg)
	srv := httptest.NewUnstartedServer(a)
	hs := NewHTTPServer(a, "")
	srv.Config.ReadHeaderTimeout, srv.Config.ReadTimeout, srv.Config.IdleTimeout = hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, api: a, fb: fb, audit: al, path: p}
}

type reply struct {
	code int
	hdr  http.Header
	body []byte
	json map[string]any
}

// req builds a request; hdr values: "Host" sets the Host header, "" token
// means none.
func (e *env) req(method, path, body string, hdr map[string]string) *http.Request {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	return r
}

func (e *env) send(r *http.Request) reply {
	e.t.Helper()
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.Method, r.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	rp := reply{code: resp.StatusCode, hdr: resp.Header, body: b}
	_ = json.Unmarshal(b, &rp.json)
	return rp
}

func (e *env) do(method, path, body string, hdr map[string]string) reply {
	e.t.Helper()
	return e.send(e.req(method, path, body, hdr))
}

func auth(kv ...string) map[string]string {
	m := map[string]string{"Authorization": "Bearer " + testToken}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var yamlCT = "application/yaml"

func (e *env) put(name, yaml string) reply {
	e.t.Helper()
	return e.do("PUT", "/api/v1/graphs/"+name, yaml, auth("Content-Type", yamlCT))
}

func kind(rp reply) string {
	if er, ok := rp.json["error"].(map[string]any); ok {
		k, _ := er["kind"].(string)
		return k
	}
	return ""
}

// events reads the audit log back through Tail.
func (e *env) events() []audit.Event {
	e.t.Helper()
	evs, err := e.audit.Tail(time.Time{}, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// find returns the audit events with action (and status, if not "").
func (e *env) find(action, status string) []audit.Event {
	var out []audit.Event
	for _, ev := range e.events() {
		if ev.Action == action && (status == "" || ev.Status == status) {
			out = append(out, ev)
		}
	}
	return out
}

// audited checks that the request with id rid left one event with action
// and status, carrying the remote address.
func (e *env) audited(rid, action, status string) audit.Event {
	e.t.Helper()
	for _, ev := range e.events() {
		if ev.RequestID == rid && ev.Action == action && ev.Status == status {
			if r, _ := ev.Meta["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
				e.t.Errorf("audit %s: remote %q, want the loopback peer", action, r)
			}
			return ev
		}
	}
	e.t.Fatalf("no audit event %s/%s for request %s in %+v", action, status, rid, e.events())
	return audit.Event{}
}

func checkCommonHeaders(t *testing.T, rp reply) {
	t.Helper()
	if ct := rp.hdr.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if rp.hdr.Get("Cache-Control") != "no-store" || rp.hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", rp.hdr)
	}
	if rp.hdr.Get("X-Request-Id") == "" {
		t.Errorf("no X-Request-Id")
	}
}

func TestHealthIsOpenAndUpstreamShaped(t *testing.T) {
	e := newEnv(t, nil)
	rp := e.do("GET", "/api/v1/health", "", map[string]string{"X-Request-Id": "probe-1"})
	if rp.code != 200 {
		t.Fatalf("health %d %s", rp.code, rp.body)
	}
	checkCommonHeaders(t, rp)
	if rp.hdr.Get("X-Request-Id") != "probe-1" || rp.json["request_id"] != "probe-1" {
		t.Errorf("request id not echoed: %v %v", rp.hdr.Get("X-Request-Id"), rp.json["request_id"])
	}
	if rp.json["schema_version"] != 1.0 || rp.json["status"] != "ok" || rp.json["error"] != nil || rp.json["ts"] == "" {
		t.Errorf("envelope %s", rp.body)
	}
	data, _ := rp.json["data"].(map[string]any)
	for _, k := range []string{"service", "repo_root", "security_mode", "token_required", "mutation_auth_mode",
		"local_mutation_override_enabled", "audit_path", "audit_retention", "actor"} {
		if _, ok := data[k]; !ok {
			t.Errorf("health data lacks upstream key %q: %s", k, rp.body)
		}
	}
	if data["service"] != "stream_control_api" || data["token_required"] != true || data["actor"] != "anonymous" {
		t.Errorf("data %v", data)
	}
	if data["audit_path"] != "" {
		t.Errorf("anonymous health discloses the audit path %v (D-API-14)", data["audit_path"])
	}
	ret, _ := data["audit_retention"].(map[string]any)
	if ret["max_bytes"] != float64(audit.DefaultMaxBytes) || ret["max_files"] != float64(audit.DefaultMaxFiles) {
		t.Errorf("retention %v", ret)
	}
	// A hostile request id is replaced, not echoed into headers and audit.
	rp = e.do("GET", "/api/v1/health", "", auth("X-Request-Id", "a b\"<script>"))
	if id := rp.hdr.Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " \"<") {
		t.Errorf("request id %q", id)
	}
	data, _ = rp.json["data"].(map[string]any)
	if data["actor"] != "token" || data["audit_path"] != e.path {
		t.Errorf("authenticated health: %v", data)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	wrong := "wrong-token-value-that-must-not-be-logged"
	cases := []struct {
		name, authz string
		want        int
	}{
		{"no token", "", 401},
		{"wrong token", "Bearer " + wrong, 401},
		{"wrong length", "Bearer x", 401},
		{"token with suffix", "Bearer " + testToken + "x", 401},
		{"basic scheme", "Basic " + testToken, 401},
		{"no scheme", testToken, 401},
		{"empty bearer", "Bearer ", 401},
		{"bearer", "Bearer " + testToken, 200},
		{"lowercase bearer", "bearer " + testToken, 200},
		{"uppercase bearer", "BEARER " + testToken, 200},
		{"extra spaces", "Bearer   " + testToken + "  ", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.authz != "" {
				h["Authorization"] = tc.authz
			}
			for _, path := range []string{"/api/v1/graphs", "/api/v1/audit", "/api/v1/plugins", "/metrics"} {
				rp := e.do("GET", path, "", h)
				if rp.code != tc.want {
					t.Fatalf("%s: %d %s", path, rp.code, rp.body)
				}
				if tc.want == 401 {
					checkCommonHeaders(t, rp)
					if kind(rp) != "unauthorized" || !strings.HasPrefix(rp.hdr.Get("WWW-Authenticate"), "Bearer") {
						t.Fatalf("%s: %v %s", path, rp.hdr, rp.body)
					}
					ev := e.audited(rp.hdr.Get("X-Request-Id"), "auth.refused", "refused")
					if ev.Actor != "anonymous" {
						t.Errorf("actor %q", ev.Actor)
					}
				}
			}
		})
	}
	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), testToken) || strings.Contains(string(raw), wrong) {
		t.Fatalf("the audit log holds a presented token:\n%s", raw)
	}
}

func TestHostCheck(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedHosts = []string{"console.internal", "10.1.2.3"} })
	cases := []struct {
		host string
		want int
	}{
		{"evil.example", 421},
		{"evil.example:80", 421},
		{"127.0.0.1.evil.example", 421},
		{"localhost.evil.example", 421},
		{"0.0.0.0", 421},
		{"192.168.1.1:18700", 421},
		{"localhost", 200},
		{"LOCALHOST:18700", 200},
		{"127.0.0.1:1", 200},
		{"127.9.9.9", 200},
		{"[::1]:18700", 200},
		{"[::ffff:127.0.0.1]:18700", 200}, // IPv4-mapped loopback (D-API-3)
		{"localhost.:18700", 200},
		{"console.internal", 200},
		{"Console.Internal:443", 200},
		{"10.1.2.3:18700", 200},
	}
	for _, tc := range cases {
		for _, path := range []string{"/api/v1/health", "/api/v1/graphs"} {
			rp := e.do("GET", path, "", auth("Host", tc.host))
			if rp.code != tc.want {
				t.Errorf("Host %q %s: %d %s", tc.host, path, rp.code, rp.body)
				continue
			}
			if tc.want == 421 {
				if kind(rp) != "misdirected_host" {
					t.Errorf("kind %q", kind(rp))
				}
				ev := e.audited(rp.hdr.Get("X-Request-Id"), "request.refused", "refused")
				if ev.Meta["host"] != tc.host {
					t.Errorf("audit meta %v", ev.Meta)
				}
			}
		}
	}
	// Without AllowedHosts the same name is refused.
	e2 := newEnv(t, nil)
	if rp := e2.do("GET", "/api/v1/health", "", map[string]string{"Host": "console.internal"}); rp.code != 421 {
		t.Errorf("unlisted host: %d", rp.code)
	}
}

func TestMutationChecks(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBody = 2048 })
	if rp := e.put("g1", goodGraph); rp.code != 201 {
		t.Fatalf("put: %d %s", rp.code, rp.body)
	}
	big := goodGraph + "# " + strings.Repeat("x", 4096) + "\n"
	cases := []struct {
		name, method, path, body, ct string
		chunked                      bool
		want                         int
		kind                         string
	}{
		{"form post with body", "POST", "/api/v1/graphs/g1/stop", "a=1", "application/x-www-form-urlencoded", false, 415, "unsupported_media_type"},
		{"multipart", "POST", "/api/v1/validate", goodGraph, "multipart/form-data; boundary=x", false, 415, "unsupported_media_type"},
		{"text/plain put", "PUT", "/api/v1/graphs/g1", goodGraph, "text/plain", false, 415, "unsupported_media_type"},
		{"no content type put", "PUT", "/api/v1/graphs/g1", goodGraph, "", false, 415, "unsupported_media_type"},
		{"garbage content type", "PUT", "/api/v1/graphs/g1", goodGraph, "application/yaml;;=", false, 415, "unsupported_media_type"},
		{"text/plain validate", "POST", "/api/v1/validate", goodGraph, "text/plain", false, 415, "unsupported_media_type"},
		{"yaml put", "PUT", "/api/v1/graphs/g1", goodGraph, "application/yaml", false, 200, ""},
		{"x-yaml put", "PUT", "/api/v1/graphs/g1", goodGraph, "application/x-yaml", false, 200, ""},
		{"text/yaml put", "PUT", "/api/v1/graphs/g1", goodGraph, "TEXT/YAML; charset=utf-8", false, 200, ""},
		{"json put", "PUT", "/api/v1/graphs/g1", `{"version":2,"nodes":[{"id":"src","kind":"source","plugin":"schnitzel_stream.test:Src"},{"id":"out","kind":"sink","plugin":"schnitzel_stream.test:Sink"}],"edges":[{"from":"src","to":"out"}]}`, "application/json; charset=utf-8", false, 200, ""},
		{"too large", "PUT", "/api/v1/graphs/g1", big, "application/yaml", false, 413, "too_large"},
		{"too large chunked", "PUT", "/api/v1/graphs/g1", big, "application/yaml", true, 413, "too_large"},
		{"too large validate", "POST", "/api/v1/validate", big, "application/yaml", true, 413, "too_large"},
		{"empty stop, text/plain", "POST", "/api/v1/graphs/g1/stop", "", "text/plain", false, 200, ""},
		{"empty start, form", "POST", "/api/v1/graphs/g1/start", "", "application/x-www-form-urlencoded", false, 200, ""},
		{"json restart body", "POST", "/api/v1/graphs/g1/restart", `{}`, "application/json", false, 200, ""},
		{"yaml restart body", "POST", "/api/v1/graphs/g1/restart", `a: 1`, "application/yaml", false, 400, "bad_request"},
		{"bad json restart body", "POST", "/api/v1/graphs/g1/restart", `{`, "application/json", false, 400, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := auth()
			if tc.ct != "" {
				h["Content-Type"] = tc.ct
			}
			r := e.req(tc.method, tc.path, tc.body, h)
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(strings.NewReader(tc.body)) // unknown length: the limit bites while reading
			}
			rp := e.send(r)
			if rp.code != tc.want || kind(rp) != tc.kind {
				t.Fatalf("%d %q, want %d %q: %s", rp.code, kind(rp), tc.want, tc.kind, rp.body)
			}
			checkCommonHeaders(t, rp)
			if tc.want >= 400 {
				e.audited(rp.hdr.Get("X-Request-Id"), "request.refused", "refused")
			}
		})
	}
}

func TestOriginCheckOnMutations(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CORSOrigins = []string{"http://console.example:5173"} })
	if rp := e.put("g1", goodGraph); rp.code != 201 {
		t.Fatalf("put: %d %s", rp.code, rp.body)
	}
	self := e.srv.URL // http://127.0.0.1:PORT
	cases := []struct {
		origin string
		want   int
	}{
		{"http://evil.example", 403},
		{"null", 403},
		{"http://127.0.0.1:1", 403},                      // another local port is another origin
		{strings.Replace(self, "http", "https", 1), 403}, // another scheme
		{"http://console.example:5173", 200},
		{self, 200},
		{"", 200},
	}
	for _, tc := range cases {
		for _, path := range []string{"/api/v1/graphs/g1/stop", "/api/v1/graphs/g1/start"} {
			h := auth()
			if tc.origin != "" {
				h["Origin"] = tc.origin
			}
			rp := e.do("POST", path, "", h)
			if rp.code != tc.want {
				t.Errorf("Origin %q %s: %d %s", tc.origin, path, rp.code, rp.body)
				continue
			}
			if tc.want == 403 {
				if kind(rp) != "forbidden" {
					t.Errorf("kind %q", kind(rp))
				}
				e.audited(rp.hdr.Get("X-Request-Id"), "request.refused", "refused")
			}
		}
	}
	// A cross-origin DELETE and PUT are refused too, and change nothing.
	for _, m := range []string{"DELETE", "PUT"} {
		rp := e.do(m, "/api/v1/graphs/g1", goodGraph, auth("Origin", "http://evil.example", "Content-Type", yamlCT))
		if rp.code != 403 {
			t.Errorf("%s: %d", m, rp.code)
		}
	}
	if len(e.fb.List()) != 1 {
		t.Errorf("graphs %v", e.fb.List())
	}
}

func TestCORS(t *testing.T) {
	preflight := func(e *env, origin string) reply {
		return e.do("OPTIONS", "/api/v1/graphs/g1", "", map[string]string{"Origin": origin,
			"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, content-type"})
	}
	closed := newEnv(t, nil)
	for _, o := range []string{"http://127.0.0.1:5173", "http://localhost:5173", "http://evil.example"} {
		rp := preflight(closed, o)
		if rp.code != 403 || rp.hdr.Get("Access-Control-Allow-Origin") != "" || rp.hdr.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("closed CORS, preflight from %s: %d %v", o, rp.code, rp.hdr)
		}
		closed.audited(rp.hdr.Get("X-Request-Id"), "request.refused", "refused")
		rp = closed.do("GET", "/api/v1/graphs", "", auth("Origin", o))
		if rp.code != 200 || rp.hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("closed CORS, GET from %s: %d %v", o, rp.code, rp.hdr)
		}
	}

	open := newEnv(t, func(c *Config) { c.CORSOrigins = []string{"http://console.example:5173"} })
	rp := preflight(open, "http://console.example:5173")
	if rp.code != 204 || rp.hdr.Get("Access-Control-Allow-Origin") != "http://console.example:5173" ||
		!strings.Contains(rp.hdr.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(strings.ToLower(rp.hdr.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("listed preflight: %d %v", rp.code, rp.hdr)
	}
	if rp.hdr.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("credentials allowed: %v", rp.hdr)
	}
	if rp := preflight(open, "http://evil.example"); rp.code != 403 || rp.hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted preflight: %d %v", rp.code, rp.hdr)
	}
	rp = open.do("GET", "/api/v1/graphs", "", auth("Origin", "http://console.example:5173"))
	if rp.code != 200 || rp.hdr.Get("Access-Control-Allow-Origin") != "http://console.example:5173" || rp.hdr.Get("Access-Control-Allow-Origin") == "*" {
		t.Errorf("listed GET: %d %v", rp.code, rp.hdr)
	}
}

func TestGraphLifecycleAndAudit(t *testing.T) {
	e := newEnv(t, nil)
	rp := e.put("g1", goodGraph)
	if rp.code != 201 {
		t.Fatalf("put: %d %s", rp.code, rp.body)
	}
	checkCommonHeaders(t, rp)
	res, _ := rp.json["result"].(map[string]any)
	gr, _ := rp.json["graph"].(map[string]any)
	if res["created"] != true || gr["name"] != "g1" || gr["state"] != "running" {
		t.Fatalf("put body %s", rp.body)
	}
	ev := e.audited(rp.hdr.Get("X-Request-Id"), "graph.apply", "ok")
	if ev.Actor != "token" || ev.Target != "g1" || ev.Meta["created"] != true {
		t.Errorf("audit %+v", ev)
	}
	raw, _ := os.ReadFile(e.path)
	if strings.Contains(string(raw), "schnitzel_stream.test:Src") {
		t.Errorf("the audit log holds the body")
	}

	if rp := e.put("g1", goodGraph); rp.code != 200 || rp.json["result"].(map[string]any)["unchanged"] != true {
		t.Errorf("same put: %d %s", rp.code, rp.body)
	}
	if rp := e.do("PUT", "/api/v1/graphs/g2?stopped=1", goodGraph, auth("Content-Type", yamlCT)); rp.code != 201 || rp.json["graph"].(map[string]any)["state"] != "stopped" {
		t.Errorf("stopped put: %d %s", rp.code, rp.body)
	}

	rp = e.do("GET", "/api/v1/graphs", "", auth())
	gs, _ := rp.json["graphs"].([]any)
	if rp.code != 200 || len(gs) != 2 {
		t.Fatalf("list: %d %s", rp.code, rp.body)
	}
	rp = e.do("GET", "/api/v1/graphs/g1", "", auth())
	rep, _ := rp.json["report"].(map[string]any)
	if rp.code != 200 || rp.json["yaml"] != goodGraph || rep["status"] != "ok" || rep["graph_version"] != 2.0 {
		t.Fatalf("get: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs/g2", "", auth()); rp.code != 200 || rp.json["report"] != nil || !strings.Contains(string(rp.body), `"report":null`) {
		t.Errorf("get never-run: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs/g1/report", "", auth()); rp.code != 200 || rp.json["status"] != "ok" || rp.json["metrics"] == nil {
		t.Errorf("report: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs/g2/report", "", auth()); rp.code != 404 || kind(rp) != "not_found" {
		t.Errorf("report never-run: %d %s", rp.code, rp.body)
	}

	for _, verb := range []string{"stop", "start", "restart"} {
		rp := e.do("POST", "/api/v1/graphs/g1/"+verb, "", auth())
		if rp.code != 200 || rp.json["graph"].(map[string]any)["name"] != "g1" {
			t.Fatalf("%s: %d %s", verb, rp.code, rp.body)
		}
		e.audited(rp.hdr.Get("X-Request-Id"), "graph."+verb, "ok")
	}
	if rp := e.do("POST", "/api/v1/graphs/nope/stop", "", auth()); rp.code != 404 || kind(rp) != "not_found" {
		t.Errorf("stop unknown: %d %s", rp.code, rp.body)
	} else {
		ev := e.audited(rp.hdr.Get("X-Request-Id"), "graph.stop", "error")
		if ev.Reason != "no such graph" {
			t.Errorf("reason %q", ev.Reason)
		}
	}

	rp = e.do("DELETE", "/api/v1/graphs/g1", "", auth())
	if rp.code != 200 || rp.json["deleted"] != "g1" {
		t.Fatalf("delete: %d %s", rp.code, rp.body)
	}
	e.audited(rp.hdr.Get("X-Request-Id"), "graph.delete", "ok")
	if rp := e.do("GET", "/api/v1/graphs/g1", "", auth()); rp.code != 404 {
		t.Errorf("get deleted: %d", rp.code)
	}
	if rp := e.do("DELETE", "/api/v1/graphs/g1", "", auth()); rp.code != 404 {
		t.Errorf("delete twice: %d", rp.code)
	}

	// The audit route reads the same lines back.
	rp = e.do("GET", "/api/v1/audit?limit=1000", "", auth())
	evs, _ := rp.json["events"].([]any)
	if rp.code != 200 || len(evs) != len(e.events()) || len(evs) < 8 {
		t.Fatalf("audit route: %d %d events, log has %d", rp.code, len(evs), len(e.events()))
	}
	if rp := e.do("GET", "/api/v1/audit?limit=2", "", auth()); len(rp.json["events"].([]any)) != 2 {
		t.Errorf("limit 2: %s", rp.body)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if rp := e.do("GET", "/api/v1/audit?since="+future, "", auth()); rp.code != 200 || len(rp.json["events"].([]any)) != 0 {
		t.Errorf("since future: %s", rp.body)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=-1", "since=yesterday", "since=2026-13-01T00:00:00Z"} {
		if rp := e.do("GET", "/api/v1/audit?"+q, "", auth()); rp.code != 400 || kind(rp) != "bad_request" {
			t.Errorf("audit ?%s: %d %s", q, rp.code, rp.body)
		}
	}
}

func TestBadNames(t *testing.T) {
	e := newEnv(t, nil)
	for _, name := range []string{"..", ".hidden", "a%2Fb", "a%2F..%2F..%2Fetc", "x.yaml", "X.YML", "a%00b", "a%0Ab", "a%20b",
		strings.Repeat("a", 65), "%C3%A9", "-lead"} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			rp := e.do(m, "/api/v1/graphs/"+name, goodGraph, auth("Content-Type", yamlCT))
			if rp.code != 400 && rp.code != 404 {
				t.Errorf("%s %q: %d %s", m, name, rp.code, rp.body)
				continue
			}
			if rp.code == 400 {
				if kind(rp) != "bad_name" {
					t.Errorf("%s %q: kind %q", m, name, kind(rp))
				}
				e.audited(rp.hdr.Get("X-Request-Id"), "request.refused", "refused")
			}
		}
	}
	if len(e.fb.List()) != 0 {
		t.Errorf("a bad name reached the backend: %v", e.fb.List())
	}
}

func TestPutInvalidIs422WithLines(t *testing.T) {
	e := newEnv(t, nil)
	if rp := e.put("g1", goodGraph); rp.code != 201 {
		t.Fatal(rp.code)
	}
	for _, body := range []string{badGraph, "version: 2\nnodes: [\n", ""} {
		rp := e.put("g1", body)
		if rp.code != 422 || kind(rp) != "invalid_graph" {
			t.Fatalf("invalid put: %d %s", rp.code, rp.body)
		}
		det, _ := rp.json["error"].(map[string]any)["details"].(map[string]any)
		errs, _ := det["errors"].([]any)
		if _, ok := det["warnings"].([]any); !ok || len(errs) == 0 {
			t.Fatalf("details %s", rp.body)
		}
		if body == badGraph {
			lines := map[float64]bool{}
			for _, d := range errs {
				dm := d.(map[string]any)
				lines[dm["line"].(float64)] = true
				if dm["file"] != "g1.yaml" || dm["severity"] != "error" || dm["message"] == "" {
					t.Errorf("diag %v", dm)
				}
			}
			if !lines[4] || !lines[6] {
				t.Errorf("want errors on lines 4 and 6: %s", rp.body)
			}
		}
		ev := e.audited(rp.hdr.Get("X-Request-Id"), "graph.apply", "error")
		if !strings.Contains(ev.Reason, "invalid") {
			t.Errorf("reason %q", ev.Reason)
		}
	}
	if d, _ := e.fb.Get("g1"); d.YAML != goodGraph {
		t.Errorf("an invalid put changed the graph")
	}
}

func TestValidateRoute(t *testing.T) {
	e := newEnv(t, nil)
	rp := e.do("POST", "/api/v1/validate?name=mine", goodGraph, auth("Content-Type", yamlCT))
	if rp.code != 200 || rp.json["valid"] != true || rp.json["graph"] != "mine" {
		t.Fatalf("valid: %d %s", rp.code, rp.body)
	}
	if _, ok := rp.json["errors"].([]any); !ok {
		t.Errorf("errors must be a list: %s", rp.body)
	}
	rp = e.do("POST", "/api/v1/validate", badGraph, auth("Content-Type", yamlCT))
	errs, _ := rp.json["errors"].([]any)
	if rp.code != 200 || rp.json["valid"] != false || len(errs) < 2 || errs[0].(map[string]any)["line"] != 4.0 {
		t.Fatalf("invalid: %d %s", rp.code, rp.body)
	}
	for _, ev := range e.events() {
		if ev.Action == "graph.validate" {
			t.Errorf("a validation changes nothing and is not audited: %+v", ev)
		}
	}
	if rp := e.do("POST", "/api/v1/validate?name=../x", goodGraph, auth("Content-Type", yamlCT)); rp.code != 400 || kind(rp) != "bad_name" {
		t.Errorf("bad name: %d %s", rp.code, rp.body)
	}
	if len(e.fb.List()) != 0 {
		t.Errorf("validate changed something")
	}
}

func TestPluginsAndMetrics(t *testing.T) {
	e := newEnv(t, nil)
	rp := e.do("GET", "/api/v1/plugins", "", auth())
	var list []map[string]string
	if rp.code != 200 || json.Unmarshal(rp.body, &list) != nil || len(list) != 1 || list[0]["name"] != "schnitzel_stream.test:Src" {
		t.Fatalf("plugins: %d %s", rp.code, rp.body)
	}
	e.put("g1", goodGraph)
	rp = e.do("GET", "/metrics", "", auth())
	body := string(rp.body)
	if rp.code != 200 || !strings.Contains(body, `schnitzel_test_graph_up{graph="g1"} 1`) || !strings.Contains(body, "go_goroutines") ||
		!strings.Contains(body, "process_") {
		t.Fatalf("metrics: %d %.400s", rp.code, body)
	}
	if rp.hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("metrics headers %v", rp.hdr)
	}
	if rp := e.do("GET", "/metrics", "", nil); rp.code != 401 {
		t.Errorf("metrics without auth: %d", rp.code)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t, nil)
	rp := e.do("PATCH", "/api/v1/graphs/g1", "", auth())
	if rp.code != 405 || kind(rp) != "method_not_allowed" || !strings.Contains(rp.hdr.Get("Allow"), "PUT") {
		t.Errorf("405: %d %v %s", rp.code, rp.hdr, rp.body)
	}
	checkCommonHeaders(t, rp)
	if rp := e.do("POST", "/api/v1/graphs", "", auth()); rp.code != 405 {
		t.Errorf("POST list: %d", rp.code)
	}
	rp = e.do("GET", "/api/v1/nope", "", auth())
	if rp.code != 404 || kind(rp) != "not_found" || rp.json["status"] != "error" {
		t.Errorf("404: %d %s", rp.code, rp.body)
	}
	checkCommonHeaders(t, rp)
	for _, p := range []string{"/api/v1//graphs", "/api/v1/graphs/../health", "/api/v1/graphs/", "/"} {
		if rp := e.do("GET", p, "", auth()); rp.code != 404 {
			t.Errorf("GET %s: %d (want 404, no redirect)", p, rp.code)
		}
	}
	if rp := e.do("GET", "/api/v1/nope", "", nil); rp.code != 401 {
		t.Errorf("unknown route without auth: %d", rp.code)
	}
	if rp := e.do("HEAD", "/api/v1/graphs", "", auth()); rp.code != 200 {
		t.Errorf("HEAD: %d", rp.code)
	}
}

func TestBackendErrorsMapped(t *testing.T) {
	e := newEnv(t, nil)
	e.fb.applyErr = errorString("open /etc/shadow: permission denied; SECRET=hunter2")
	rp := e.put("g1", goodGraph)
	if rp.code != 500 || kind(rp) != "internal" || strings.Contains(string(rp.body), "shadow") || strings.Contains(string(rp.body), "hunter2") {
		t.Fatalf("500: %d %s", rp.code, rp.body)
	}
	e.audited(rp.hdr.Get("X-Request-Id"), "graph.apply", "error")
	raw, _ := os.ReadFile(e.path)
	if strings.Contains(string(raw), "hunter2") {
		t.Errorf("the audit log holds the backend's error text")
	}
}

// TestAuditFailureDoesNotHideTheOutcome: the action ran, so the client
// learns it even when the audit append fails (D-API-6); the log says so.
func TestAuditFailureDoesNotHideTheOutcome(t *testing.T) {
	e := newEnv(t, nil)
	e.audit.Close()
	if rp := e.put("g1", goodGraph); rp.code != 201 {
		t.Fatalf("put with a closed audit log: %d %s", rp.code, rp.body)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func decode(b []byte) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func TestSecretsMaskedInGraphs(t *testing.T) {
	e := newEnv(t, nil)
	e.put("cam1", goodGraph)
	e.fb.detailHook = func(d *serve.GraphDetail) {
		d.Env = map[string]string{"SS_INPUT_URL": "rtsp://admin:pw123@cam/live", "SS_API_TOKEN": "tok-secret", "SS_STREAM_ID": "cam1"}
		d.LastError = "dial rtsp://admin:pw123@cam/live: refused"
	}
	rp := e.do("GET", "/api/v1/graphs/cam1", "", auth())
	if rp.code != 200 || strings.Contains(string(rp.body), "pw123") || strings.Contains(string(rp.body), "tok-secret") {
		t.Fatalf("secret leaked: %s", rp.body)
	}
	env, _ := rp.json["env"].(map[string]any)
	if env["SS_STREAM_ID"] != "cam1" || env["SS_API_TOKEN"] != "***" {
		t.Errorf("env %v", env)
	}
}

func TestRefusalAuditIsBounded(t *testing.T) {
	var l refusalLimiter
	n := 0
	for range refusalBurst + 10 {
		if l.allow() {
			n++
		}
	}
	if n != refusalBurst || l.takeSuppressed() != 10 || l.takeSuppressed() != 0 {
		t.Fatalf("allowed %d of %d", n, refusalBurst+10)
	}
}

// TestRouteTable: every state-changing method is a mutation, only health
// and login are open, and Handle'd routes get the same middleware.
func TestRouteTable(t *testing.T) {
	e := newEnv(t, nil)
	e.api.Handle(Route{Method: "POST", Pattern: "/api/v1/extra", Mutates: true, Handler: func(w http.ResponseWriter, r *http.Request) {
		if _, err := e.api.ReadBody(w, r); err != nil {
			return
		}
		e.api.Audit(r, "extra.run", "x", "ok", "ok", nil)
		writeJSON(w, 200, map[string]string{"actor": Actor(r), "id": RequestID(r)})
	}})
	open := map[string]bool{}
	for _, rt := range e.api.Routes() {
		if rt.Method != "GET" && !rt.Mutates {
			t.Errorf("%s %s changes state but is not marked Mutates", rt.Method, rt.Pattern)
		}
		if rt.Open {
			open[rt.Method+" "+rt.Pattern] = true
		}
	}
	// The open routes: health, and the three that authenticate a login
	// themselves (the one-time code, the token exchange, "who am I").
	if len(open) != 4 || !open["GET /api/v1/health"] || !open["GET /login"] || !open["POST /api/v1/session"] || !open["GET /api/v1/session"] {
		t.Errorf("open routes %v", open)
	}
	if rp := e.do("POST", "/api/v1/extra", "{}", map[string]string{"Content-Type": "application/json"}); rp.code != 401 {
		t.Errorf("extra without auth: %d", rp.code)
	}
	if rp := e.do("POST", "/api/v1/extra", "a=b", auth("Content-Type", "application/x-www-form-urlencoded")); rp.code != 415 {
		t.Errorf("extra form: %d", rp.code)
	}
	rp := e.do("POST", "/api/v1/extra", "{}", auth("Content-Type", "application/json"))
	if rp.code != 200 || rp.json["actor"] != "token" || rp.json["id"] != rp.hdr.Get("X-Request-Id") {
		t.Fatalf("extra: %d %s", rp.code, rp.body)
	}
	e.audited(rp.hdr.Get("X-Request-Id"), "extra.run", "ok")
}
