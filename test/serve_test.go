//go:build !windows

package test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// serveLog collects a process's stderr while the test reads it.
type serveLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *serveLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *serveLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// served is one `schnitzel serve` process.
type served struct {
	t                *testing.T
	cmd              *exec.Cmd
	url              string
	graphsDir, state string
	stderr           *serveLog
	done             chan struct{}
	code             int
	tokenFile        string
	token            string
	loginURL         string
	exitedOnSignal   bool
}

var servingRE = regexp.MustCompile(`serving on (https?://\S+)`)
var loginRE = regexp.MustCompile(`console login \(one-time\): (\S+)`)

// startServe starts serve on a free loopback port (--listen :0; the
// address is read from its "serving on" line) and waits until it answers.
func startServe(t *testing.T, graphs, state string, extra ...string) *served {
	t.Helper()
	tokenFile := filepath.Join(state, "token")
	for _, a := range extra {
		if v, ok := strings.CutPrefix(a, "--token-file="); ok {
			tokenFile = v
		}
	}
	return startServeArgs(t, graphs, state, tokenFile, append([]string{"--listen", "127.0.0.1:0"}, extra...)...)
}

// startServeArgs starts serve with these flags (the --listen included).
func startServeArgs(t *testing.T, graphs, state, tokenFile string, extra ...string) *served {
	t.Helper()
	args := append([]string{"serve", "--graphs", graphs, "--state", state,
		"--watch-interval", "200ms", "--backoff-min", "200ms", "--backoff-max", "1s", "--drain-timeout", "3s"}, extra...)
	s := &served{t: t, graphsDir: graphs, state: state, stderr: &serveLog{}, done: make(chan struct{}), tokenFile: tokenFile}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = t.TempDir() // relative paths in graphs resolve here
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		s.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			s.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				s.exitedOnSignal = true
			}
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	poll.Until(t, 20*time.Second, "serve to print its address", func() bool {
		select {
		case <-s.done:
			t.Fatalf("serve exited with %d:\n%s", s.code, s.stderr.String())
		default:
		}
		m := servingRE.FindStringSubmatch(s.stderr.String())
		if m == nil {
			return false
		}
		s.url = m[1]
		return true
	})
	if m := loginRE.FindStringSubmatch(s.stderr.String()); m != nil {
		s.loginURL = m[1]
	}
	tok, err := os.ReadFile(s.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	s.token = strings.TrimSpace(string(tok))
	return s
}

// signal stops serve with sig and returns its exit code.
func (s *served) signal(sig os.Signal) int {
	s.t.Helper()
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("serve did not exit after %v:\n%s", sig, s.stderr.String())
	}
	return s.code
}

type answer struct {
	status int
	body   []byte
	header http.Header
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", a.status, err, a.body)
	}
}

// do sends a raw request. token "": no Authorization header.
func (s *served) do(method, path, token, ctype string, body []byte, mod ...func(*http.Request)) answer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for _, m := range mod {
		m(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, b, resp.Header}
}

// cli runs a client command against this serve.
func (s *served) cli(args ...string) result {
	s.t.Helper()
	return run(s.t, "", []string{"SCHNITZEL_SERVER=" + s.url, "SCHNITZEL_TOKEN_FILE=" + s.tokenFile}, args...)
}

type graphRow struct {
	Name        string  `json:"name"`
	State       string  `json:"state"`
	Desired     string  `json:"desired"`
	Restarts    int     `json:"restarts"`
	OutPerSec   float64 `json:"out_per_sec"`
	LastError   string  `json:"last_error"`
	ReloadError string  `json:"reload_error"`
	Generation  int64   `json:"generation"`
}

func (s *served) graphs(t *testing.T) map[string]graphRow {
	t.Helper()
	a := s.do("GET", "/api/v1/graphs", s.token, "", nil)
	if a.status != 200 {
		t.Fatalf("GET /api/v1/graphs: %d %s", a.status, a.body)
	}
	var out struct {
		Graphs []graphRow `json:"graphs"`
	}
	a.json(t, &out)
	m := map[string]graphRow{}
	for _, g := range out.Graphs {
		m[g.Name] = g
	}
	return m
}

func (s *served) waitState(t *testing.T, name, state string) graphRow {
	t.Helper()
	var g graphRow
	poll.Until(t, 20*time.Second, name+" "+state, func() bool {
		g = s.graphs(t)[name]
		return g.State == state
	})
	return g
}

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// countLines counts the lines of a file (0 when missing).
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

func serveTicker(out string, interval float64) string {
	return fmt.Sprintf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: %g}
  - id: mid
    plugin: schnitzel_stream.nodes.dev:Identity
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.file_sink:JsonlSink
    config: {path: %q}
edges:
  - {src: src, dst: mid}
  - {src: mid, dst: out}
`, interval, out)
}

// TestServeRefusals: what serve refuses before it serves anything.
func TestServeRefusals(t *testing.T) {
	dir := t.TempDir()
	graphs, state := filepath.Join(dir, "graphs"), filepath.Join(dir, "state")

	// Non-loopback without TLS and without a token file: exit 2, the fix.
	r := run(t, "", nil, "serve", "--listen", "0.0.0.0:0", "--graphs", graphs, "--state", state)
	if r.code != 2 || !strings.Contains(r.stderr, "--tls-cert") || !strings.Contains(r.stderr, "--token-file") || !strings.Contains(r.stderr, "fix:") {
		t.Errorf("0.0.0.0 without TLS: exit %d\n%s", r.code, r.stderr)
	}
	tok := writeFile(t, filepath.Join(dir, "tok"), strings.Repeat("a", 32)+"\n")
	os.Chmod(tok, 0o600)
	r = run(t, "", nil, "serve", "--listen", "0.0.0.0:0", "--token-file", tok, "--graphs", graphs, "--state", state)
	if r.code != 2 || !strings.Contains(r.stderr, "--tls-cert") {
		t.Errorf("0.0.0.0 with a token file but no TLS: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("a refused serve created its state directory")
	}
	r = run(t, "", nil, "serve", "--listen", "127.0.0.1:0", "--tls-cert", tok, "--graphs", graphs, "--state", state)
	if r.code != 2 || !strings.Contains(r.stderr, "--tls-key") {
		t.Errorf("--tls-cert alone: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, "", nil, "serve", "--listen", "127.0.0.1:0", "--tls-cert", tok, "--tls-key", tok, "--graphs", graphs, "--state", state)
	if r.code != 2 || !strings.Contains(r.stderr, "PEM") || strings.Contains(r.stderr, "serving on") {
		t.Errorf("a TLS pair that does not load: exit %d\n%s", r.code, r.stderr)
	}

	// An unreadable graphs directory (root reads anything: skip there).
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked")
		os.Mkdir(locked, 0o000)
		defer os.Chmod(locked, 0o700)
		r = run(t, "", nil, "serve", "--listen", "127.0.0.1:0", "--graphs", locked, "--state", state)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot be read") || !strings.Contains(r.stderr, locked) {
			t.Errorf("unreadable graphs dir: exit %d\n%s", r.code, r.stderr)
		}
	}

	// A token file others can read: a warning naming it and chmod 600.
	os.Chmod(tok, 0o644)
	s := startServe(t, graphs, state, "--token-file="+tok)
	if !strings.Contains(s.stderr.String(), tok) || !strings.Contains(s.stderr.String(), "chmod 600") {
		t.Errorf("no warning about the readable token file:\n%s", s.stderr.String())
	}
	// A second serve on the same state directory: refused, exit 1.
	r = run(t, "", nil, "serve", "--listen", "127.0.0.1:0", "--graphs", graphs, "--state", state)
	if r.code != 1 || !strings.Contains(r.stderr, "another schnitzel serve") {
		t.Errorf("second serve: exit %d\n%s", r.code, r.stderr)
	}
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d\n%s", code, s.stderr.String())
	}
}

// TestServeSecurity attacks a running serve as a remote client and a web
// page would, and checks that every refusal is audited.
func TestServeSecurity(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, filepath.Join(dir, "graphs"), filepath.Join(dir, "state"), "--max-body-bytes", "4096")

	// The generated token: 64 hex characters, mode 0600, never printed.
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(s.token) {
		t.Errorf("token %q is not 32 random bytes in hex", s.token)
	}
	if fi, err := os.Stat(s.tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode: %v %v", fi.Mode(), err)
	}
	if out := s.stderr.String(); strings.Contains(out, s.token) || !strings.Contains(out, s.tokenFile) {
		t.Errorf("serve's output must name the token file and never the token:\n%s", out)
	}
	if s.loginURL == "" || !strings.HasPrefix(s.loginURL, s.url+"/login?code=") {
		t.Errorf("no one-time login URL printed:\n%s", s.stderr.String())
	}

	if a := s.do("GET", "/metrics", "", "", nil); a.status != 401 {
		t.Errorf("/metrics without a token: %d", a.status)
	}
	if a := s.do("GET", "/metrics", s.token, "", nil); a.status != 200 || !strings.Contains(string(a.body), "go_goroutines") {
		t.Errorf("/metrics: %d %.200s", a.status, a.body)
	}
	if a := s.do("GET", "/api/v1/health", "", "", nil); a.status != 200 {
		t.Errorf("health without a token: %d %s", a.status, a.body)
	}
	kind := func(a answer) string {
		var env struct {
			Status string `json:"status"`
			Error  struct {
				Kind string `json:"kind"`
			} `json:"error"`
		}
		_ = json.Unmarshal(a.body, &env)
		return env.Status + "/" + env.Error.Kind
	}
	checks := []struct {
		what   string
		a      answer
		status int
		kind   string
	}{
		{"no token", s.do("GET", "/api/v1/graphs", "", "", nil), 401, "error/unauthorized"},
		{"wrong token", s.do("GET", "/api/v1/graphs", strings.Repeat("0", 64), "", nil), 401, "error/unauthorized"},
		{"lower-case scheme works", s.do("GET", "/api/v1/graphs", "", "", nil, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+s.token) }), 200, "/"},
		{"DNS rebinding Host", s.do("GET", "/api/v1/graphs", s.token, "", nil, func(r *http.Request) { r.Host = "evil.example:18700" }), 421, "error/misdirected_host"},
		{"form POST (CSRF)", s.do("POST", "/api/v1/graphs/x/start", s.token, "application/x-www-form-urlencoded", []byte("a=b")), 415, "error/unsupported_media_type"},
		{"text/plain PUT", s.do("PUT", "/api/v1/graphs/x", s.token, "text/plain", []byte("version: 2\n")), 415, "error/unsupported_media_type"},
		{"body too large", s.do("PUT", "/api/v1/graphs/x", s.token, "application/yaml", bytes.Repeat([]byte("#"), 8192)), 413, "error/too_large"},
		{"bad name", s.do("PUT", "/api/v1/graphs/..%2Fetc", s.token, "application/yaml", []byte("version: 2\n")), 400, "error/bad_name"},
		{"wrong login code", s.do("GET", "/login?code=nope", "", "", nil), 403, "error/forbidden"},
	}
	for _, c := range checks {
		if c.a.status != c.status || (c.kind != "/" && kind(c.a) != c.kind) {
			t.Errorf("%s: %d %s, want %d %s", c.what, c.a.status, c.a.body, c.status, c.kind)
		}
	}
	// Cross-site: a JSON POST from another origin is refused.
	a := s.do("POST", "/api/v1/graphs/x/start", s.token, "application/json", []byte("{}"), func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") })
	if a.status != 403 {
		t.Errorf("cross-origin POST: %d %s", a.status, a.body)
	}

	// Every refusal above is in the audit log, readable over the API.
	var events struct {
		Events []struct {
			Action, Status, Reason, RequestID string
		} `json:"events"`
	}
	s.do("GET", "/api/v1/audit?limit=200", s.token, "", nil).json(t, &events)
	count := map[string]int{}
	for _, e := range events.Events {
		if e.Status == "refused" {
			count[e.Action]++
		}
	}
	if count["auth.refused"] < 2 || count["request.refused"] < 5 {
		t.Errorf("refusals audited: %v (want >= 2 auth.refused: no/wrong token; >= 5 request.refused: host, 2x media type, size, origin)\n%+v", count, events.Events)
	}

	// The one-time login: the code works once, the cookie authenticates.
	jarless := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := jarless.Get(s.loginURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "schnitzel_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Errorf("login: status %d, cookie %+v", resp.StatusCode, session)
	} else if a := s.do("GET", "/api/v1/graphs", "", "", nil, func(r *http.Request) { r.AddCookie(session) }); a.status != 200 {
		t.Errorf("session cookie: %d %s", a.status, a.body)
	}
	if resp, err := jarless.Get(s.loginURL); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("the login code worked twice: %d", resp.StatusCode)
		}
	}
	if code := s.signal(syscall.SIGINT); code != 0 {
		t.Errorf("SIGINT: exit %d\n%s", code, s.stderr.String())
	}
}

// TestServeLifecycle drives graphs through the CLI clients: apply, report,
// tap, hot reload of a durable graph without loss or duplicates, an invalid
// reload that keeps the old version, delete, a crashing graph beside a
// healthy one, and serve restarts (SIGTERM and kill -9).
func TestServeLifecycle(t *testing.T) {
	requirePlugins(t, "FaultNode", "SqliteQueueSource")
	dir := t.TempDir()
	graphsDir, state := filepath.Join(dir, "graphs"), filepath.Join(dir, "state")
	s := startServe(t, graphsDir, state)

	// apply -> running -> report shows packets.
	tickOut := filepath.Join(dir, "tick.jsonl")
	tickFile := writeFile(t, filepath.Join(dir, "tick.yaml"), serveTicker(tickOut, 0.02))
	r := s.cli("graphs", "apply", "-f", tickFile)
	if r.code != 0 || !strings.Contains(r.stdout, "graph tick created") {
		t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s.waitState(t, "tick", "running")
	poll.Until(t, 10*time.Second, "the report to count packets", func() bool {
		var rep struct {
			Metrics map[string]int64 `json:"metrics"`
		}
		a := s.do("GET", "/api/v1/graphs/tick/report", s.token, "", nil)
		return a.status == 200 && json.Unmarshal(a.body, &rep) == nil && rep.Metrics["packets.produced_total"] > 3
	})
	if _, err := os.Stat(filepath.Join(graphsDir, "tick.yaml")); err != nil {
		t.Errorf("the applied graph is not in the graphs dir: %v", err)
	}
	r = s.cli("graphs", "ls")
	if r.code != 0 || !regexp.MustCompile(`(?m)^NAME\s+STATE\s+STATUS\s+IN/s\s+OUT/s\s+RESTARTS\s+SINCE\s+LAST-ERROR\n.*tick\s+running`).MatchString(r.stdout) {
		t.Errorf("graphs ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if r := s.cli("graphs", "get", "tick", "--yaml"); r.code != 0 || r.stdout != serveTicker(tickOut, 0.02) {
		t.Errorf("graphs get --yaml is not the applied file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := s.cli("graphs", "get", "tick"); r.code != 0 || !regexp.MustCompile(`(?m)^src\s+source\s`).MatchString(r.stdout) {
		t.Errorf("graphs get: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var listed struct {
		Graphs []graphRow `json:"graphs"`
	}
	if r := s.cli("graphs", "ls", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &listed) != nil || len(listed.Graphs) != 1 {
		t.Errorf("graphs ls --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// tap prints packets as JSON lines.
	r = s.cli("tap", "tick", "src", "--limit", "3")
	tapped := lines(r.stdout)
	if r.code != 0 || len(tapped) != 3 {
		t.Fatalf("tap: exit %d, %d lines\n%s%s", r.code, len(tapped), r.stdout, r.stderr)
	}
	for _, l := range tapped {
		var p struct {
			PacketID string `json:"packet_id"`
			Payload  struct {
				Seq *int64 `json:"seq"`
			} `json:"payload"`
		}
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.PacketID == "" || p.Payload.Seq == nil {
			t.Errorf("tapped line %q: %v", l, err)
		}
	}
	// Tap streams are bounded (--max-taps, default 64): the next one is a
	// 429, audited, and the graph keeps running; closing them frees the slots.
	var open []*http.Response
	for i := 0; i < 64; i++ {
		req, _ := http.NewRequest("GET", s.url+"/api/v1/graphs/tick/tap?node=src", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("tap stream %d: %d %s", i+1, resp.StatusCode, b)
		}
		open = append(open, resp)
	}
	if a := s.do("GET", "/api/v1/graphs/tick/tap?node=src", s.token, "", nil); a.status != 429 || !strings.Contains(string(a.body), "too_many") {
		t.Errorf("65th tap stream: %d %s", a.status, a.body)
	}
	if g := s.graphs(t)["tick"]; g.State != "running" {
		t.Errorf("tick with 64 taps open: %+v", g)
	}
	for _, resp := range open {
		resp.Body.Close()
	}
	poll.Until(t, 10*time.Second, "the tap slots to be freed", func() bool {
		r := s.cli("tap", "tick", "src", "--limit", "1")
		return r.code == 0 && len(lines(r.stdout)) == 1
	})
	if r := s.cli("tap", "tick", "nope", "--limit", "1"); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("tap of a missing node: exit %d %s", r.code, r.stderr)
	}
	if r := s.cli("top", "--once"); r.code != 0 || !strings.Contains(r.stdout, "tick") || !strings.Contains(r.stdout, "  src") {
		t.Errorf("top --once: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An invalid new version: refused with FILE:LINE, the old one keeps running.
	gen := s.graphs(t)["tick"].Generation
	bad := writeFile(t, filepath.Join(dir, "tick-bad.yaml"), strings.Replace(serveTicker(tickOut, 0.02), "dev:Identity", "dev:NoSuchNode", 1))
	r = s.cli("graphs", "apply", "-f", bad, "--name", "tick")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid_graph") || !regexp.MustCompile(regexp.QuoteMeta(bad)+`:\d+: `).MatchString(r.stderr) {
		t.Errorf("invalid apply: exit %d\n%s", r.code, r.stderr)
	}
	if g := s.graphs(t)["tick"]; g.State != "running" || g.Generation != gen {
		t.Errorf("after an invalid apply: %+v (generation was %d)", g, gen)
	}
	before := countLines(tickOut)
	poll.Until(t, 5*time.Second, "the old version to keep writing", func() bool { return countLines(tickOut) > before+5 })

	// Durable reload: a feeder fills a queue while a drain graph copies it
	// to a JSONL file; the drain is reloaded twice mid-stream. Every fed
	// packet reaches the drain's sink exactly once.
	fed, drained, queue := filepath.Join(dir, "fed.jsonl"), filepath.Join(dir, "drained.jsonl"), filepath.Join(dir, "q.sqlite3")
	const feedN = 600
	feed := fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.004, count: %d}}
  - {id: q, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink", config: {path: %q, forward: true}}
  - {id: log, kind: sink, plugin: "schnitzel_stream.nodes.file_sink:JsonlSink", config: {path: %q}}
edges:
  - {src: src, dst: q}
  - {src: q, dst: log}
`, feedN, queue, fed)
	drain := func(fsync string) string {
		return fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", config: {path: %q, follow: true, poll_interval_sec: 0.05, limit: 20}}
  - {id: out, plugin: "schnitzel_stream.nodes.file_sink:JsonlSink", config: {path: %q, forward: true, fsync: %s}}
  - {id: ack, kind: sink, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink", config: {path: %q}}
edges:
  - {src: src, dst: out}
  - {src: out, dst: ack}
`, queue, drained, fsync, queue)
	}
	drainFile := writeFile(t, filepath.Join(dir, "drain.yaml"), drain("batch"))
	if r := s.cli("graphs", "apply", "-f", drainFile); r.code != 0 {
		t.Fatalf("apply drain: %s%s", r.stdout, r.stderr)
	}
	if r := s.cli("graphs", "apply", "-f", writeFile(t, filepath.Join(dir, "feed.yaml"), feed)); r.code != 0 {
		t.Fatalf("apply feed: %s%s", r.stdout, r.stderr)
	}
	for i, fsync := range []string{"always", "batch"} {
		at := (i + 1) * feedN / 4
		// While the feed still runs (and the drain has started): a reload
		// under load.
		poll.Until(t, 20*time.Second, fmt.Sprintf("%d packets fed", at), func() bool { return countLines(fed) >= at && countLines(drained) > 0 })
		writeFile(t, drainFile, drain(fsync))
		r := s.cli("graphs", "apply", "-f", drainFile)
		if r.code != 0 || !strings.Contains(r.stdout, "reloaded in") {
			t.Fatalf("reload %d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	if countLines(fed) >= feedN {
		t.Logf("note: the feed had ended before the last reload (slow machine)")
	}
	poll.Until(t, 30*time.Second, "the feed to end and the queue to drain", func() bool {
		return countLines(fed) == feedN && countLines(drained) >= feedN
	})
	ids := func(path string) map[string]int {
		m := map[string]int{}
		f, _ := os.Open(path)
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var p struct {
				PacketID string `json:"packet_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
				t.Fatalf("%s: %q: %v", path, sc.Text(), err)
			}
			m[p.PacketID]++
		}
		return m
	}
	fedIDs, drainedIDs := ids(fed), ids(drained)
	var lost, dup int
	for id := range fedIDs {
		switch n := drainedIDs[id]; {
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
	}
	if lost != 0 || dup != 0 || len(drainedIDs) != len(fedIDs) {
		t.Errorf("durable reload: fed %d, drained %d distinct (%d lines): %d lost, %d duplicated", len(fedIDs), len(drainedIDs), countLines(drained), lost, dup)
	}
	if g := s.graphs(t)["drain"]; g.Generation < 3 || g.State != "running" {
		t.Errorf("drain after two reloads: %+v", g)
	}

	// Delete.
	if r := s.cli("graphs", "rm", "feed"); r.code != 0 {
		t.Errorf("rm: %s%s", r.stdout, r.stderr)
	}
	if _, ok := s.graphs(t)["feed"]; ok {
		t.Error("feed still listed after rm")
	}
	if _, err := os.Stat(filepath.Join(graphsDir, "feed.yaml")); err == nil {
		t.Error("feed.yaml still in the graphs dir after rm")
	}
	if r := s.cli("graphs", "rm", "feed"); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("rm of a missing graph: exit %d %s", r.code, r.stderr)
	}

	// A graph that panics restarts with backoff; its neighbour keeps its rate.
	faulty := `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.01}}
  - {id: boom, plugin: "schnitzel_stream.nodes.dev:FaultNode", config: {after: 5, mode: panic}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:Identity"}
edges:
  - {src: src, dst: boom}
  - {src: boom, dst: out}
`
	if r := s.cli("graphs", "apply", "-f", writeFile(t, filepath.Join(dir, "faulty.yaml"), faulty)); r.code != 0 {
		t.Fatalf("apply faulty: %s%s", r.stdout, r.stderr)
	}
	start, startLines := time.Now(), countLines(tickOut)
	var sawBackoff bool
	poll.Until(t, 30*time.Second, "faulty to restart 3 times", func() bool {
		g := s.graphs(t)["faulty"]
		sawBackoff = sawBackoff || g.State == "backoff"
		return g.Restarts >= 3
	})
	g := s.graphs(t)["faulty"]
	if !sawBackoff || !strings.Contains(g.LastError, "panic") {
		t.Errorf("faulty: saw backoff %v, %+v", sawBackoff, g)
	}
	// tick runs at 50/s; under the neighbour's crashes it keeps at least half.
	if el, n := time.Since(start).Seconds(), countLines(tickOut)-startLines; float64(n) < 0.5*50*el {
		t.Errorf("tick wrote %d lines in %.1fs while faulty crashed (want >= %.0f)", n, el, 0.5*50*el)
	}
	if r := s.cli("graphs", "stop", "faulty"); r.code != 0 || !strings.Contains(r.stdout, "stopped") {
		t.Errorf("stop faulty: %s%s", r.stdout, r.stderr)
	}
	s.waitState(t, "faulty", "stopped")

	// SIGTERM, restart: the graphs and the stopped flag survive.
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, s.stderr.String())
	}
	s = startServe(t, graphsDir, state)
	s.waitState(t, "tick", "running")
	s.waitState(t, "drain", "running")
	gs := s.graphs(t)
	if g := gs["faulty"]; g.State != "stopped" || g.Desired != "stopped" {
		t.Errorf("faulty after a restart of serve: %+v", g)
	}
	if _, ok := gs["feed"]; ok {
		t.Error("the deleted graph came back after a restart")
	}

	// kill -9: the OS releases the lock; the next serve starts.
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s = startServe(t, graphsDir, state)
	s.waitState(t, "tick", "running")
	if g := s.graphs(t)["faulty"]; g.State != "stopped" {
		t.Errorf("faulty after kill -9: %+v", g)
	}
	// And one more serve on the same state directory is refused.
	r = run(t, "", nil, "serve", "--listen", "127.0.0.1:0", "--graphs", graphsDir, "--state", state)
	if r.code != 1 || !strings.Contains(r.stderr, "another schnitzel serve") {
		t.Errorf("second serve: exit %d\n%s", r.code, r.stderr)
	}
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("final SIGTERM: exit %d\n%s", code, s.stderr.String())
	}
}

// TestServeFleetAndCompat: `schnitzel fleet` sends the local files' text
// and each stream becomes a graph fleet.<id>; upstream's routes answer in
// upstream's envelope, behind the same auth.
func TestServeFleetAndCompat(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, filepath.Join(dir, "graphs"), filepath.Join(dir, "state"))
	fleetFile := writeFile(t, filepath.Join(dir, "fleet.yaml"), `streams:
  - id: cam01
    enabled: true
    input: {type: plugin, plugin: "schnitzel_stream.nodes.dev:TickerSource"}
  - id: cam02
    enabled: true
    input: {type: plugin, plugin: "schnitzel_stream.nodes.dev:TickerSource"}
  - id: cam03
    enabled: false
    input: {type: plugin, plugin: "schnitzel_stream.nodes.dev:TickerSource"}
`)
	tmpl := writeFile(t, filepath.Join(dir, "tmpl.yaml"), `version: 2
nodes:
  - id: src
    kind: source
    plugin: ${oc.env:SS_INPUT_PLUGIN,schnitzel_stream.nodes.dev:StaticSource}
    config: {source_id: "${oc.env:SS_STREAM_ID,stream01}", interval_sec: 0.05}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:Identity"}
edges:
  - {from: src, to: out}
`)
	r := s.cli("fleet", "start", "--config", fleetFile, "--graph-template", tmpl)
	if r.code != 0 || !strings.Contains(r.stdout, "fleet.cam01") || !strings.Contains(r.stdout, "fleet.cam02") || strings.Contains(r.stdout, "cam03") {
		t.Fatalf("fleet start: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s.waitState(t, "fleet.cam01", "running")
	s.waitState(t, "fleet.cam02", "running")
	r = s.cli("fleet", "status")
	if r.code != 0 || !regexp.MustCompile(`cam01\s+fleet.cam01\s+\S+\s+running`).MatchString(r.stdout) {
		t.Errorf("fleet status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A fleet file with an error: its line, under the local name.
	badFleet := writeFile(t, filepath.Join(dir, "bad-fleet.yaml"), "streams:\n  - id: ../x\n    input: {type: plugin, plugin: a:B}\n")
	r = s.cli("fleet", "start", "--config", badFleet, "--graph-template", tmpl)
	if r.code != 1 || !strings.Contains(r.stderr, badFleet+":2") {
		t.Errorf("bad fleet file: exit %d\n%s", r.code, r.stderr)
	}
	r = s.cli("fleet", "stop", "--stream", "cam02")
	if r.code != 0 {
		t.Errorf("fleet stop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	poll.Until(t, 10*time.Second, "fleet.cam02 to go", func() bool { _, ok := s.graphs(t)["fleet.cam02"]; return !ok })
	if _, ok := s.graphs(t)["fleet.cam01"]; !ok {
		t.Error("stopping cam02 also removed cam01")
	}

	// Upstream's envelope on its routes, with auth.
	for _, path := range []string{"/api/v1/governance/policy-snapshot", "/api/v1/fleet/status", "/api/v1/presets"} {
		if a := s.do("GET", path, "", "", nil); a.status != 401 {
			t.Errorf("%s without a token: %d", path, a.status)
		}
		var env struct {
			SchemaVersion int             `json:"schema_version"`
			Status        string          `json:"status"`
			RequestID     string          `json:"request_id"`
			TS            string          `json:"ts"`
			Data          json.RawMessage `json:"data"`
		}
		a := s.do("GET", path, s.token, "", nil, func(r *http.Request) { r.Header.Set("X-Request-Id", "rid-1") })
		a.json(t, &env)
		if a.status != 200 || env.SchemaVersion != 1 || env.Status != "ok" || env.RequestID != "rid-1" || env.TS == "" || len(env.Data) < 2 {
			t.Errorf("%s: %d %s", path, a.status, a.body)
		}
	}
	// upstream's graph/validate body (tests/unit/control_api): an invalid spec is
	// 200 with status error.
	a := s.do("POST", "/api/v1/graph/validate", s.token, "application/json",
		[]byte(`{"spec": {"version": 2, "nodes": [{"id": "src", "kind": "source", "plugin": "schnitzel_stream.nodes.dev:StaticSource"}], "edges": [{"src": "src", "dst": "missing"}]}}`))
	var v struct {
		Status string `json:"status"`
		Data   struct {
			Validation struct {
				OK bool `json:"ok"`
			} `json:"validation"`
		} `json:"data"`
	}
	a.json(t, &v)
	if a.status != 200 || v.Status != "error" || v.Data.Validation.OK {
		t.Errorf("graph/validate of an invalid spec: %d %s", a.status, a.body)
	}
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "schnitzel test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

// TestServeTLS: beyond loopback with TLS and a token file, serve starts;
// the clients reach it over https with --ca-file, and plain http fails.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	tok := writeFile(t, filepath.Join(dir, "token"), strings.Repeat("b", 40)+"\n")
	os.Chmod(tok, 0o600)
	s := startServeArgs(t, filepath.Join(dir, "graphs"), filepath.Join(dir, "state"), tok,
		"--listen", "0.0.0.0:0", "--tls-cert", cert, "--tls-key", key, "--token-file", tok)
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") || !strings.HasPrefix(s.loginURL, "https://") {
		t.Fatalf("serving on %q, login %q", s.url, s.loginURL)
	}
	if !strings.Contains(s.stderr.String(), "--allowed-hosts") {
		t.Errorf("no hint about --allowed-hosts for a non-loopback listener:\n%s", s.stderr.String())
	}
	r := s.cli("graphs", "ls", "--ca-file", cert)
	if r.code != 0 || !strings.Contains(r.stdout, "NAME") {
		t.Errorf("graphs ls over TLS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := s.cli("graphs", "ls"); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("graphs ls without --ca-file: exit %d %s", r.code, r.stderr)
	}
	if r := s.cli("graphs", "ls", "--server", strings.Replace(s.url, "https://", "http://", 1)); r.code != 1 {
		t.Errorf("plain http to the TLS port: exit %d %s", r.code, r.stderr)
	}
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
}
