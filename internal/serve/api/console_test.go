package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/packet"
)

// fakeConsole answers every request it gets with its path, so a test sees
// which requests reached the console and which stayed with the API.
var fakeConsole = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprintf(w, "console:%s", r.URL.Path)
})

func withConsole(c *Config) { c.Console = fakeConsole }

func TestConsoleRouting(t *testing.T) {
	e := newEnv(t, withConsole)
	for _, p := range []string{"/", "/graphs", "/graphs/fleet.cam-1", "/assets/index-abc.js", "/queues?x=1"} {
		// No credentials: the console's files hold no data.
		rp := e.do("GET", p, "", nil)
		want := "console:" + strings.SplitN(p, "?", 2)[0]
		if rp.code != 200 || string(rp.body) != want {
			t.Errorf("GET %s: %d %q, want the console", p, rp.code, rp.body)
		}
		if rp := e.do("HEAD", p, "", nil); rp.code != 200 {
			t.Errorf("HEAD %s: %d", p, rp.code)
		}
	}
	// API paths never fall through to the console, and still need auth.
	for _, p := range []string{"/api/v1/nope", "/api/", "/api", "/metrics", "/metricsx", "/logout", "/login/x"} {
		rp := e.do("GET", p, "", nil)
		if strings.HasPrefix(string(rp.body), "console:") || rp.code != 401 {
			t.Errorf("GET %s unauthenticated: %d %q, want 401 from the API", p, rp.code, rp.body)
		}
	}
	if rp := e.do("GET", "/api/v1/nope", "", auth()); rp.code != 404 || kind(rp) != "not_found" {
		t.Errorf("unknown API route: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/logout", "", auth()); rp.code != 405 {
		t.Errorf("GET /logout: %d %s", rp.code, rp.body)
	}
	// Other methods on console paths: not the console, and behind auth.
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if rp := e.do(m, "/graphs", "", nil); rp.code != 401 {
			t.Errorf("%s /graphs: %d %q", m, rp.code, rp.body)
		}
	}
	// The Host check comes first (DNS rebinding reads the page too).
	if rp := e.do("GET", "/", "", map[string]string{"Host": "evil.example"}); rp.code != 421 || strings.HasPrefix(string(rp.body), "console:") {
		t.Errorf("foreign Host: %d %q", rp.code, rp.body)
	}
	// A path the mux would clean is not served (no redirect around checks).
	r := e.req("GET", "/", "", nil)
	r.URL.Path, r.URL.RawPath = "/graphs/../api/v1/graphs", ""
	if rp := e.send(r); strings.HasPrefix(string(rp.body), "console:") {
		t.Errorf("unclean path reached the console: %d %q", rp.code, rp.body)
	}
	// The known routes are unchanged.
	if rp := e.do("GET", "/api/v1/health", "", nil); rp.code != 200 {
		t.Errorf("health: %d", rp.code)
	}
}

func TestNoConsoleIs404(t *testing.T) {
	e := newEnv(t, nil)
	if rp := e.do("GET", "/", "", auth()); rp.code != 404 || kind(rp) != "not_found" {
		t.Errorf("GET / without a console: %d %s", rp.code, rp.body)
	}
}

func TestSessionTokenExchange(t *testing.T) {
	e := newEnv(t, withConsole)
	origin := e.srv.URL
	post := func(body string, h map[string]string) reply {
		m := map[string]string{"Content-Type": "application/json", "Origin": origin}
		for k, v := range h {
			m[k] = v
		}
		for k, v := range m {
			if v == "" {
				delete(m, k)
			}
		}
		return e.do("POST", "/api/v1/session", body, m)
	}
	// Not logged in: 401, not audited (a page load asks this).
	before := len(e.events())
	if rp := e.do("GET", "/api/v1/session", "", nil); rp.code != 401 || kind(rp) != "unauthorized" {
		t.Errorf("GET session anonymous: %d %s", rp.code, rp.body)
	}
	if n := len(e.events()); n != before {
		t.Errorf("anonymous GET session audited %d events", n-before)
	}
	if rp := e.do("GET", "/api/v1/session", "", auth()); rp.code != 200 || rp.json["actor"] != "token" {
		t.Errorf("GET session with bearer: %d %s", rp.code, rp.body)
	}

	rp := post(`{"token":"wrong"}`, nil)
	if rp.code != 401 || sessionFrom(t, rp) != nil {
		t.Fatalf("wrong token: %d %s", rp.code, rp.body)
	}
	ev := e.audited(rp.hdr.Get("X-Request-Id"), "auth.refused", "refused")
	if strings.Contains(fmt.Sprint(ev), "wrong") {
		t.Errorf("the presented token is in the audit: %+v", ev)
	}
	for _, c := range []struct {
		body string
		h    map[string]string
		code int
	}{
		{`{"token":"` + testToken + `"}`, map[string]string{"Origin": "http://evil.example"}, 403},
		{`{"token":"` + testToken + `"}`, map[string]string{"Content-Type": "text/plain"}, 415},
		{`{"token":"` + testToken + `"}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		{`token=` + testToken, nil, 400},
		{`{"token":""}`, nil, 401},
		{``, nil, 400},
	} {
		if rp := post(c.body, c.h); rp.code != c.code || sessionFrom(t, rp) != nil {
			t.Errorf("POST session %q %v: %d %s, want %d", c.body, c.h, rp.code, rp.body, c.code)
		}
	}

	rp = post(`{"token":"`+testToken+`"}`, nil)
	c := sessionFrom(t, rp)
	if rp.code != 204 || c == nil {
		t.Fatalf("right token: %d %s", rp.code, rp.body)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge <= 0 || strings.Contains(c.Value, testToken) {
		t.Errorf("cookie %+v", c)
	}
	e.audited(rp.hdr.Get("X-Request-Id"), "auth.login", "ok")
	cookie := map[string]string{"Cookie": sessionCookie + "=" + c.Value}
	if rp := e.do("GET", "/api/v1/session", "", cookie); rp.code != 200 || rp.json["actor"] != "session" {
		t.Errorf("GET session with cookie: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs", "", cookie); rp.code != 200 {
		t.Errorf("cookie from the exchange: %d", rp.code)
	}
	// Logout through DELETE needs our Origin like any cookie mutation.
	if rp := e.do("DELETE", "/api/v1/session", "", cookie); rp.code != 403 {
		t.Errorf("DELETE session without Origin: %d", rp.code)
	}
	cookie["Origin"] = origin
	if rp := e.do("DELETE", "/api/v1/session", "", cookie); rp.code != 200 {
		t.Errorf("DELETE session: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/session", "", cookie); rp.code != 401 {
		t.Errorf("after logout: %d", rp.code)
	}
}

func TestSessionRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	e.api.loginFails.now = func() time.Time { return now }
	h := map[string]string{"Content-Type": "application/json"}
	for i := range loginFailLimit {
		if rp := e.do("POST", "/api/v1/session", `{"token":"guess-`+fmt.Sprint(i)+`"}`, h); rp.code != 401 {
			t.Fatalf("guess %d: %d", i, rp.code)
		}
	}
	// Past the limit even the right token waits: a guesser cannot tell.
	rp := e.do("POST", "/api/v1/session", `{"token":"`+testToken+`"}`, h)
	if rp.code != 429 || kind(rp) != "too_many" || rp.hdr.Get("Retry-After") == "" || sessionFrom(t, rp) != nil {
		t.Fatalf("after %d failures: %d %s", loginFailLimit, rp.code, rp.body)
	}
	e.audited(rp.hdr.Get("X-Request-Id"), "auth.refused", "refused")
	// The bearer token and existing sessions are not affected.
	if rp := e.do("GET", "/api/v1/graphs", "", auth()); rp.code != 200 {
		t.Errorf("bearer during the block: %d", rp.code)
	}
	now = now.Add(loginFailWindow)
	if rp := e.do("POST", "/api/v1/session", `{"token":"`+testToken+`"}`, h); rp.code != 204 {
		t.Errorf("after the window: %d %s", rp.code, rp.body)
	}
}

// makeQueue writes a real queue file: 3 queued rows, 2 dead letters.
func makeQueue(t *testing.T, path string) {
	t.Helper()
	q, err := queue.Open(path, queue.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	for i := range 5 {
		rec, err := queue.RecordOf(packet.New("demo", fmt.Sprintf("cam%d", i), packet.MapOf("n", int64(i)), "", nil), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Enqueue(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := q.Lease(ctx, 2, time.Minute)
	if err != nil || len(ms) != 2 {
		t.Fatalf("lease: %v %v", ms, err)
	}
	for _, m := range ms {
		if _, err := q.Nack(ctx, queue.Ref{Seq: m.Seq}, packet.Permanent(errors.New("bad payload"))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQueues(t *testing.T) {
	e := newEnv(t, nil)
	dir := t.TempDir()
	qp := filepath.Join(dir, "q.sqlite3")
	missing := filepath.Join(dir, "later.sqlite3")
	other := filepath.Join(dir, "other.sqlite3")
	makeQueue(t, qp)
	makeQueue(t, other) // a real queue no graph names
	e.fb.queues = []serve.QueueRef{
		{Path: qp, Graph: "g1", Node: "sink", Plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink"},
		{Path: qp, Graph: "g2", Node: "src", Plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource"},
		{Path: missing, Graph: "g3", Node: "sink", Plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink"},
	}
	if rp := e.do("GET", "/api/v1/queues", "", nil); rp.code != 401 {
		t.Errorf("queues without auth: %d", rp.code)
	}
	rp := e.do("GET", "/api/v1/queues", "", auth())
	if rp.code != 200 {
		t.Fatalf("queues: %d %s", rp.code, rp.body)
	}
	qs, _ := rp.json["queues"].([]any)
	if len(qs) != 2 {
		t.Fatalf("queues %s", rp.body)
	}
	byPath := map[string]map[string]any{}
	for _, q := range qs {
		m := q.(map[string]any)
		byPath[m["path"].(string)] = m
	}
	q := byPath[qp]
	if q["rows"] != 3.0 || q["dead"] != 2.0 || q["leased"] != 0.0 || q["exists"] != true || fmt.Sprint(q["graphs"]) != "[g1 g2]" {
		t.Errorf("queue stats %v", q)
	}
	if age, ok := q["oldest_age_sec"].(float64); !ok || age < 0 || age > 600 {
		t.Errorf("oldest_age_sec %v", q["oldest_age_sec"])
	}
	if nodes, _ := q["nodes"].([]any); len(nodes) != 2 {
		t.Errorf("nodes %v", q["nodes"])
	}
	if m := byPath[missing]; m["exists"] != false || m["rows"] != 0.0 || m["oldest_age_sec"] != nil {
		t.Errorf("missing file %v", m)
	}

	peek := func(query string) reply {
		return e.do("GET", "/api/v1/queues/peek?"+query, "", auth())
	}
	rp = peek("path=" + qp + "&limit=2")
	rows, _ := rp.json["rows"].([]any)
	if rp.code != 200 || len(rows) != 2 {
		t.Fatalf("peek: %d %s", rp.code, rp.body)
	}
	r0 := rows[0].(map[string]any)
	if r0["kind"] != "demo" || r0["source_id"] != "cam2" || fmt.Sprint(r0["payload"]) != "map[n:2]" {
		t.Errorf("peek row %v", r0)
	}
	rp = peek("path=" + qp + "&dead=1")
	rows, _ = rp.json["rows"].([]any)
	if rp.code != 200 || len(rows) != 2 || !strings.Contains(fmt.Sprint(rows[0]), "bad payload") {
		t.Fatalf("peek dead: %d %s", rp.code, rp.body)
	}
	if rp := peek("path=" + missing); rp.code != 200 || len(rp.json["rows"].([]any)) != 0 {
		t.Errorf("peek missing file: %d %s", rp.code, rp.body)
	}
	for _, bad := range []string{"path=" + other, "path=" + filepath.Join(dir, "x", "..", "other.sqlite3"), "path=q.sqlite3", "path=/etc/passwd", ""} {
		rp := peek(bad)
		if rp.code != 403 || kind(rp) != "forbidden" {
			t.Errorf("peek %q: %d %s", bad, rp.code, rp.body)
		}
		e.audited(rp.hdr.Get("X-Request-Id"), "request.refused", "refused")
	}
	if rp := peek("path=" + qp + "&limit=0"); rp.code != 400 {
		t.Errorf("limit 0: %d", rp.code)
	}

	req := func(body string) reply {
		return e.do("POST", "/api/v1/queues/requeue", body, auth("Content-Type", "application/json"))
	}
	if rp := req(`{"path":"` + other + `","all":true}`); rp.code != 403 {
		t.Errorf("requeue of a file no graph uses: %d %s", rp.code, rp.body)
	}
	for _, bad := range []string{`{"path":"` + qp + `"}`, `{"path":"` + qp + `","all":true,"seq":[1]}`, `[]`} {
		if rp := req(bad); rp.code != 400 {
			t.Errorf("requeue %s: %d %s", bad, rp.code, rp.body)
		}
	}
	deadRows := peek("path=" + qp + "&dead=1").json["rows"].([]any)
	seq := int64(deadRows[0].(map[string]any)["seq"].(float64))
	rp = req(fmt.Sprintf(`{"path":%q,"seq":[%d]}`, qp, seq))
	if rp.code != 200 || rp.json["requeued"] != 1.0 {
		t.Fatalf("requeue one: %d %s", rp.code, rp.body)
	}
	ev := e.audited(rp.hdr.Get("X-Request-Id"), "queue.requeue", "ok")
	if ev.Target != qp {
		t.Errorf("audit target %q", ev.Target)
	}
	rp = req(fmt.Sprintf(`{"path":%q,"all":true}`, qp))
	if rp.code != 200 || rp.json["requeued"] != 1.0 {
		t.Fatalf("requeue all: %d %s", rp.code, rp.body)
	}
	q = nil
	for _, x := range e.do("GET", "/api/v1/queues", "", auth()).json["queues"].([]any) {
		if m := x.(map[string]any); m["path"] == qp {
			q = m
		}
	}
	if q["rows"] != 5.0 || q["dead"] != 0.0 {
		t.Errorf("after requeue %v", q)
	}
	// A cookie session needs our Origin to requeue (CSRF).
	if rp := e.do("POST", "/api/v1/queues/requeue", `{"path":"`+qp+`","all":true}`, map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}); rp.code != 403 {
		t.Errorf("cross-origin requeue: %d", rp.code)
	}
}
