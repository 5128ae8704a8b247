package ionodes

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const httpSinkName = "schnitzel_stream.nodes.http:HttpJsonSink"

// received is one request as the test server saw it.
type received struct {
	at     time.Time
	method string
	header http.Header
	body   string
}

// receiver is a real loopback HTTP server whose answer is chosen per
// request by status (n counts from 1); it records every request and counts
// new TCP connections.
type receiver struct {
	srv      *httptest.Server
	status   func(n int, r *http.Request) int
	extra    func(w http.ResponseWriter) // optional, before WriteHeader
	mu       sync.Mutex
	reqs     []received
	newConns atomic.Int64
}

func newReceiver(t testing.TB, status func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{status: status}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.newConns.Add(1)
		}
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, received{at: time.Now(), method: r.Method, header: r.Header.Clone(), body: string(body)})
	n := len(rc.reqs)
	rc.mu.Unlock()
	st := rc.status(n, r)
	if rc.extra != nil {
		rc.extra(w)
	}
	w.WriteHeader(st)
	// A body the client must drain to reuse the connection.
	_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

func failFirst(k, code int) func(int, *http.Request) int {
	return func(n int, _ *http.Request) int {
		if n <= k {
			return code
		}
		return http.StatusOK
	}
}

func always(code int) func(int, *http.Request) int {
	return func(int, *http.Request) int { return code }
}

func testRegistry() *plugin.Registry {
	r := plugin.NewRegistry()
	Register(r)
	return r
}

// startHTTPSink builds and starts the sink with cfg given as alternating
// keys and values.
func startHTTPSink(t *testing.T, kv ...any) *httpSink {
	t.Helper()
	n := plugintest.Build(t, testRegistry(), httpSinkName, "node", packet.MapOf(kv...))
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n.(*httpSink)
}

func metricValue(t *testing.T, n plugin.Metrics, name string) int64 {
	t.Helper()
	for _, m := range n.Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// probeEmitter records, for every emitted packet, how many requests the
// server had answered at that moment.
type probeEmitter struct {
	plugintest.Collector
	rc       *receiver
	atCounts []int
}

func (e *probeEmitter) Emit(p *packet.Packet) error {
	e.atCounts = append(e.atCounts, e.rc.count())
	return e.Collector.Emit(p)
}

func TestHTTPSinkRetriesUntil2xxThenForwards(t *testing.T) {
	const k = 3
	rc := newReceiver(t, failFirst(k, http.StatusServiceUnavailable))
	base, maxWait := 50*time.Millisecond, 120*time.Millisecond
	s := startHTTPSink(t, "url", rc.srv.URL+"/events", "retry_max_attempts", int64(5),
		"retry_backoff_sec", base.Seconds(), "retry_backoff_max_sec", maxWait.Seconds(), "forward", "true")
	p := packet.New("event", "cam01", packet.MapOf("event_id", "e1", "name", "Zoë"), "", packet.MapOf("idempotency_key", "event:cam01:e1"))
	em := &probeEmitter{rc: rc}
	if err := s.Process(context.Background(), p, em); err != nil {
		t.Fatalf("process: %v", err)
	}

	reqs := rc.requests()
	if len(reqs) != k+1 {
		t.Fatalf("server saw %d requests, want %d", len(reqs), k+1)
	}
	for i, r := range reqs {
		if r.method != "POST" || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("request %d: %s %q", i, r.method, r.header.Get("Content-Type"))
		}
		if got := r.header.Get("Idempotency-Key"); got != "event:cam01:e1" {
			t.Errorf("request %d: Idempotency-Key %q, want the packet's key on every retry", i, got)
		}
		if want := `{"event_id": "e1", "name": "Zoë"}`; r.body != want {
			t.Errorf("request %d: body %q, want %q (json.dumps, ensure_ascii=False)", i, r.body, want)
		}
	}
	// Waits are backoffWait's jittered [d/2, d] with d = 50, 100, 120 ms;
	// the upper slack absorbs a loaded machine.
	for i := 1; i < len(reqs); i++ {
		d := min(base<<(i-1), maxWait)
		gap := reqs[i].at.Sub(reqs[i-1].at)
		if gap < d/2 || gap > d+time.Second {
			t.Errorf("gap before attempt %d = %v, want within [%v, %v+slack]", i+1, gap, d/2, d)
		}
	}
	out := em.Packets()
	if len(out) != 1 || len(em.atCounts) != 1 || em.atCounts[0] != k+1 {
		t.Fatalf("forwarded %d packets at server counts %v; want 1, after the 2xx (request %d)", len(out), em.atCounts, k+1)
	}
	q := out[0]
	if q.ID != p.ID || q == p {
		t.Errorf("forwarded packet must be a copy with the same id")
	}
	h, _ := q.Meta.Get("http")
	hm, _ := h.(*packet.Map)
	if u, _ := hm.GetString("url"); u != rc.srv.URL+"/events" {
		t.Errorf("meta.http.url = %q", u)
	}
	if m, _ := hm.GetString("method"); m != "POST" {
		t.Errorf("meta.http.method = %q", m)
	}
	if _, has := p.Meta.Get("http"); has {
		t.Errorf("input packet's meta was changed")
	}
	if got := [3]int64{metricValue(t, s, "posted_total"), metricValue(t, s, "failed_total"), metricValue(t, s, "retry_total")}; got != [3]int64{1, 0, k} {
		t.Errorf("posted, failed, retry = %v, want [1 0 %d]", got, k)
	}
}

func TestHTTPSinkOutageLongerThanBudgetDropsPacket(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	url := strings.Replace(rc.srv.URL, "http://", "http://ops:s3cret@", 1) + "/events"
	s := startHTTPSink(t, "url", url, "retry_max_attempts", int64(3), "retry_backoff_sec", 0.01, "forward", true)
	p := packet.New("event", "cam01", packet.MapOf("n", int64(1)), "", nil)
	c := &plugintest.Collector{}
	err := s.Process(context.Background(), p, c)

	var pe *plugin.PacketError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a plugin.PacketError (the runtime nacks and counts it)", err)
	}
	if rc.count() != 3 {
		t.Errorf("server saw %d requests, want 3 attempts", rc.count())
	}
	if len(c.Packets()) != 0 {
		t.Errorf("forwarded a packet that was not delivered")
	}
	if metricValue(t, s, "failed_total") != 1 || metricValue(t, s, "retry_total") != 2 || metricValue(t, s, "posted_total") != 0 {
		t.Errorf("metrics %v", s.Metrics())
	}
	for _, m := range s.Metrics() {
		if m.Name == "failed_total" && !m.Loss {
			t.Errorf("failed_total must be a Loss metric")
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("password leaked: %s", err)
	}
	if !strings.Contains(err.Error(), "***:***@") || !strings.Contains(err.Error(), "503") {
		t.Errorf("error %q should name the masked URL and the last status", err)
	}
	if user, pass, ok := (&http.Request{Header: rc.requests()[0].header}).BasicAuth(); !ok || user != "ops" || pass != "s3cret" {
		t.Errorf("URL credentials not sent as basic auth: %q %q %v", user, pass, ok)
	}
}

func TestHTTPSinkRaiseOnFailEndsRun(t *testing.T) {
	rc := newReceiver(t, always(http.StatusInternalServerError))
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_max_attempts", int64(2), "retry_backoff_sec", int64(0), "raise_on_fail", true)
	err := s.Process(context.Background(), packet.New("e", "s", int64(1), "", nil), &plugintest.Collector{})
	var pe *plugin.PacketError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a run-ending error (not a PacketError)", err)
	}
	if !strings.Contains(err.Error(), "http delivery failed") {
		t.Errorf("err = %v", err)
	}
}

func TestHTTPSinkStatusPolicy(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		retryOn  []any // nil: default list
		wantReqs int
		wantOK   bool
	}{
		{"400 not retried", 400, nil, 1, false},
		{"404 not retried", 404, nil, 1, false},
		{"400 listed is retried", 400, []any{int64(400), "503"}, 3, false},
		{"409 retried by default (upstream)", 409, nil, 3, false},
		{"429 retried", 429, nil, 3, false},
		{"empty list retries no status", 503, []any{}, 1, false},
		{"302 is not followed", 302, nil, 1, false},
		{"201 is success", 201, nil, 1, true},
		{"204 is success", 204, nil, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int, r *http.Request) int {
				if r.URL.Path == "/elsewhere" {
					return 200
				}
				return tc.status
			})
			rc.extra = func(w http.ResponseWriter) { w.Header().Set("Location", "/elsewhere") }
			kv := []any{"url", rc.srv.URL + "/in", "retry_max_attempts", int64(3), "retry_backoff_sec", 0.001}
			if tc.retryOn != nil {
				kv = append(kv, "retry_on_status", tc.retryOn)
			}
			s := startHTTPSink(t, kv...)
			err := s.Process(context.Background(), packet.New("e", "s", int64(1), "", nil), &plugintest.Collector{})
			if (err == nil) != tc.wantOK {
				t.Errorf("err = %v, want ok=%v", err, tc.wantOK)
			}
			if rc.count() != tc.wantReqs {
				t.Errorf("server saw %d requests, want %d", rc.count(), tc.wantReqs)
			}
		})
	}
}

func TestHTTPSinkReusesConnections(t *testing.T) {
	// Every third request fails once: retries must reuse the connection too.
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_backoff_sec", 0.001)
	for i := 0; i < 30; i++ {
		p := packet.New("e", "s", packet.MapOf("i", int64(i)), "", nil)
		if err := s.Process(context.Background(), p, &plugintest.Collector{}); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if got := metricValue(t, s, "posted_total"); got != 30 {
		t.Errorf("posted_total = %d", got)
	}
	if rc.count() <= 30 {
		t.Errorf("expected some retries, server saw %d requests", rc.count())
	}
	if n := rc.newConns.Load(); n != 1 {
		t.Errorf("%d TCP connections for %d requests, want 1 (keep-alive)", n, rc.count())
	}
}

func TestHTTPSinkTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		select { // hang until the client gives up on the request
		case <-r.Context().Done():
		case <-release:
		}
		return http.StatusOK
	})
	s := startHTTPSink(t, "url", rc.srv.URL, "timeout_sec", 0.1, "retry_max_attempts", int64(2), "retry_backoff_sec", 0.01)
	t0 := time.Now()
	err := s.Process(context.Background(), packet.New("e", "s", int64(1), "", nil), &plugintest.Collector{})
	el := time.Since(t0)
	var pe *plugin.PacketError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("err = %v, want a dropped packet naming the timeout", err)
	}
	if el < 200*time.Millisecond || el > 5*time.Second {
		t.Errorf("took %v, want about 2 x 100ms", el)
	}
	if rc.count() != 2 {
		t.Errorf("server saw %d requests, want 2 (timeouts are retried)", rc.count())
	}
}

func TestHTTPSinkConnectionRefusedIsRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := startHTTPSink(t, "url", "http://"+addr+"/x", "retry_max_attempts", int64(3), "retry_backoff_sec", 0.001)
	err = s.Process(context.Background(), packet.New("e", "s", int64(1), "", nil), &plugintest.Collector{})
	var pe *plugin.PacketError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	if got := metricValue(t, s, "retry_total"); got != 2 {
		t.Errorf("retry_total = %d, want 2", got)
	}
}

func TestHTTPSinkStopsPromptlyOnCancel(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_max_attempts", int64(5), "retry_backoff_sec", int64(30))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Process(ctx, packet.New("e", "s", int64(1), "", nil), &plugintest.Collector{}) }()
	deadline := time.Now().Add(5 * time.Second)
	for rc.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the server, not synchronising on time
	}
	cancel()
	select {
	case err := <-done:
		var pe *plugin.PacketError
		if !errors.As(err, &pe) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want a PacketError wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Process did not return after cancel (backoff wait not cancellable)")
	}
	if metricValue(t, s, "failed_total") != 0 {
		t.Errorf("an interrupted delivery is not a give-up")
	}
}

func TestHTTPSinkRetryAfterIsHonouredUpToTheCap(t *testing.T) {
	rc := newReceiver(t, failFirst(1, http.StatusTooManyRequests))
	rc.extra = func(w http.ResponseWriter) { w.Header().Set("Retry-After", "5") }
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_backoff_sec", 0.01, "retry_backoff_max_sec", 0.3)
	if err := s.Process(context.Background(), packet.New("e", "s", int64(1), "", nil), &plugintest.Collector{}); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 300*time.Millisecond || gap > 3*time.Second {
		t.Errorf("gap %v, want Retry-After capped at retry_backoff_max_sec (300ms)", gap)
	}
}

func TestHTTPSinkBodyAndHeaders(t *testing.T) {
	rc := newReceiver(t, always(200))
	s := startHTTPSink(t, "url", rc.srv.URL, "body", "Packet", "method", " put ", "idempotency_header", "",
		"headers", packet.MapOf("X-Api-Key", "abc", "Content-Type", "application/vnd.x+json", "Host", "events.example"))
	p := &packet.Packet{ID: "p-1", TS: "2026-02-15T00:00:00+00:00", Kind: "event", SourceID: "cam01",
		Payload: packet.MapOf("v", 1.5), Meta: packet.MapOf("idempotency_key", "k")}
	if err := s.Process(context.Background(), p, &plugintest.Collector{}); err != nil {
		t.Fatal(err)
	}
	r := rc.requests()[0]
	want := `{"packet_id": "p-1", "ts": "2026-02-15T00:00:00+00:00", "kind": "event", "source_id": "cam01", "payload": {"v": 1.5}, "meta": {"idempotency_key": "k"}}`
	if r.body != want {
		t.Errorf("body %s\nwant %s", r.body, want)
	}
	if r.method != "PUT" || r.header.Get("X-Api-Key") != "abc" || r.header.Get("Content-Type") != "application/vnd.x+json" {
		t.Errorf("method %s headers %v", r.method, r.header)
	}
	if _, has := r.header["Idempotency-Key"]; has {
		t.Errorf("idempotency_header '' must disable the header")
	}
}

func TestHTTPSinkNonJSONPayloadEndsRunWithoutRequest(t *testing.T) {
	rc := newReceiver(t, always(200))
	s := startHTTPSink(t, "url", rc.srv.URL)
	err := s.Process(context.Background(), packet.New("frame", "cam", frameLike{}, "", nil), &plugintest.Collector{})
	var pe *plugin.PacketError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "not JSON-serializable") {
		t.Fatalf("err = %v", err)
	}
	if rc.count() != 0 {
		t.Errorf("sent a request for a non-JSON payload")
	}
}

func TestHTTPSinkConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  *packet.Map
		err  string // "" = valid
	}{
		{"defaults", packet.MapOf("url", "http://127.0.0.1:1/x"), ""},
		{"missing url", packet.MapOf(), "config.url"},
		{"blank url", packet.MapOf("url", "  "), "config.url"},
		{"ftp", packet.MapOf("url", "ftp://h/x"), "scheme"},
		{"no host", packet.MapOf("url", "http:///x"), "no host"},
		{"zero attempts", packet.MapOf("url", "http://h", "retry_max_attempts", int64(0)), "retry_max_attempts"},
		{"zero timeout", packet.MapOf("url", "http://h", "timeout_sec", int64(0)), "timeout_sec"},
		{"bad body", packet.MapOf("url", "http://h", "body", "frames"), "config.body"},
		{"bad status", packet.MapOf("url", "http://h", "retry_on_status", []any{int64(5)}), "retry_on_status[0]"},
		{"non-int status", packet.MapOf("url", "http://h", "retry_on_status", []any{"x"}), "retry_on_status[0]"},
		{"bad forward", packet.MapOf("url", "http://h", "forward", "maybe"), "config.forward"},
		{"bad header name", packet.MapOf("url", "http://h", "headers", packet.MapOf("a b", "x")), "headers"},
		{"env strings", packet.MapOf("url", "http://h", "retry_max_attempts", "4", "forward", "false", "timeout_sec", "0.5"), ""},
		{"secret not echoed", packet.MapOf("url", "gopher://u:topsecret@h/"), "***:***@h"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plugintest.TryBuild(testRegistry(), httpSinkName, "sink", tc.cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("config error leaks the password: %v", err)
			}
		})
	}
	// Strict booleans and normalisation.
	s := plugintest.Build(t, testRegistry(), httpSinkName, "sink", packet.MapOf("url", " http://h/x ", "forward", "false", "retry_backoff_sec", -2.0, "retry_backoff_max_sec", 0.0)).(*httpSink)
	if s.cfg.Forward || s.cfg.URL != "http://h/x" || s.backoff != 0 || s.backoffMax != 0 || s.cfg.Method != "POST" {
		t.Errorf("normalised config %+v", s.cfg)
	}
}

func TestBackoffWait(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		n         int
		base, max time.Duration
		u         float64
		want      time.Duration
	}{
		{1, 1000 * ms, 10000 * ms, 0, 500 * ms},
		{1, 1000 * ms, 10000 * ms, 0.999999, 999 * ms},
		{2, 1000 * ms, 10000 * ms, 0, 1000 * ms},
		{3, 1000 * ms, 10000 * ms, 0.5, 3000 * ms},
		{5, 1000 * ms, 10000 * ms, 0, 5000 * ms},  // 16s capped at 10s
		{60, 1000 * ms, 10000 * ms, 0, 5000 * ms}, // no overflow on long outages
		{3, 0, 10000 * ms, 0.5, 0},
	}
	for _, tc := range cases {
		got := backoffWait(tc.n, tc.base, tc.max, tc.u)
		if got.Truncate(ms) != tc.want {
			t.Errorf("backoffWait(%d, %v, %v, %v) = %v, want %v", tc.n, tc.base, tc.max, tc.u, got, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(-7 * time.Second).Format(http.TimeFormat), 0},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.v != "" {
			h.Set("Retry-After", tc.v)
		}
		if got := retryAfter(h, now); got != tc.want {
			t.Errorf("Retry-After %q = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestHTTPSinkCrossCheckUpstream posts the same packets with upstream's
// HttpJsonSink (when SCHNITZEL_UPSTREAM_SRC is set, see the JSONL
// cross-check) and with ours, and compares what the server received.
func TestHTTPSinkCrossCheckUpstream(t *testing.T) {
	src := os.Getenv("SCHNITZEL_UPSTREAM_SRC")
	if src == "" {
		t.Skip("set SCHNITZEL_UPSTREAM_SRC to compare with upstream")
	}
	for _, body := range []string{"payload", "packet"} {
		t.Run(body, func(t *testing.T) {
			rc := newReceiver(t, always(http.StatusOK))
			script := `
import sys
from schnitzel_stream.nodes.http import HttpJsonSink
from schnitzel_stream.packet import StreamPacket
s = HttpJsonSink(config={"url": sys.argv[1], "body": sys.argv[2], "retry_max_attempts": 1})
for i in range(2):
    meta = {"idempotency_key": "k%d" % i} if i else {}
    s.process(StreamPacket(packet_id="p-%d" % i, ts="2026-02-15T00:00:00+00:00", kind="event", source_id="cam01",
        payload={"event_id": "e%d" % i, "name": "Zo\u00eb \u2713", "v": [1, 2.5, None]}, meta=meta))
`
			cmd := exec.Command("/usr/bin/python3", "-c", script, rc.srv.URL, body)
			cmd.Env = append(os.Environ(), "PYTHONPATH="+src)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("upstream: %v\n%s", err, out)
			}
			s := startHTTPSink(t, "url", rc.srv.URL, "body", body, "retry_max_attempts", int64(1))
			for i := 0; i < 2; i++ {
				p := fixedPacket(i)
				if i == 0 {
					p.Meta = nil
				}
				if err := s.Process(context.Background(), p, &plugintest.Collector{}); err != nil {
					t.Fatal(err)
				}
			}
			reqs := rc.requests()
			if len(reqs) != 4 {
				t.Fatalf("%d requests", len(reqs))
			}
			for i := 0; i < 2; i++ {
				py, ours := reqs[i], reqs[i+2]
				if py.body != ours.body || py.method != ours.method {
					t.Errorf("packet %d: body differs\nupstream %q\nours     %q", i, py.body, ours.body)
				}
				for _, h := range []string{"Idempotency-Key", "Content-Type"} {
					if py.header.Get(h) != ours.header.Get(h) {
						t.Errorf("packet %d: %s upstream %q, ours %q", i, h, py.header.Get(h), ours.header.Get(h))
					}
				}
			}
		})
	}
}

func TestHTTPSinkGivesBackOnGracefulStop(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_max_attempts", int64(50), "retry_backoff_sec", int64(30))
	done := make(chan error, 1)
	go func() {
		done <- s.Process(context.Background(), packet.New("e", "s", int64(1), "", nil), &plugintest.Collector{})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for rc.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the server, not synchronising on time
	}
	s.Stopping()
	select {
	case err := <-done:
		var pe *plugin.PacketError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "stopping after 1 attempt(s)") {
			t.Errorf("err = %v, want a PacketError saying the stop ended the retries", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Process kept waiting for a retry after Stopping")
	}
	if rc.count() != 1 {
		t.Errorf("%d requests, want 1: no retry once stopping", rc.count())
	}
	if metricValue(t, s, "failed_total") != 0 {
		t.Errorf("a packet given back on stop is not a give-up")
	}
}
