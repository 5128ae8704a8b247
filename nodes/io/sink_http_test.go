package ionodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// request by status (n counts from 1); it records every request, counts
// new TCP connections and the peak of concurrent requests.
type receiver struct {
	srv      *httptest.Server
	status   func(n int, r *http.Request) int
	extra    func(w http.ResponseWriter) // optional, before WriteHeader
	respBody string                      // answer body; "" = 2 KiB the client must drain
	mu       sync.Mutex
	reqs     []received
	newConns atomic.Int64
	cur      atomic.Int64
	peak     atomic.Int64
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
	c := rc.cur.Add(1)
	defer rc.cur.Add(-1)
	for p := rc.peak.Load(); c > p && !rc.peak.CompareAndSwap(p, c); p = rc.peak.Load() {
	}
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
	body = []byte(rc.respBody)
	if len(body) == 0 {
		// A body the client must drain to reuse the connection.
		body = []byte(strings.Repeat("x", 2048))
	}
	_, _ = w.Write(body)
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

// hang answers only when the client gives up or release is closed.
func hang(release <-chan struct{}) func(int, *http.Request) int {
	return func(_ int, r *http.Request) int {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return http.StatusOK
	}
}

func testRegistry() *plugin.Registry {
	r := plugin.NewRegistry()
	Register(r)
	return r
}

// startHTTPSink builds and starts the sink with cfg given as alternating
// keys and values.
func startHTTPSink(t testing.TB, kv ...any) *httpSink {
	t.Helper()
	n := plugintest.Build(t, testRegistry(), httpSinkName, "node", packet.MapOf(kv...))
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n.(*httpSink)
}

func metricValue(t testing.TB, n plugin.Metrics, name string) int64 {
	t.Helper()
	for _, m := range n.Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// nacks records the Nack calls of packets made by nackable.
type nacks struct {
	mu   sync.Mutex
	errs map[string][]error // packet id -> errors
}

func (n *nacks) get(id string) []error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]error(nil), n.errs[id]...)
}

func (n *nacks) total() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, e := range n.errs {
		k += len(e)
	}
	return k
}

// packets returns count packets p-0, p-1, ... whose Nack records into nk.
func (n *nacks) packets(count int) []*packet.Packet {
	if n.errs == nil {
		n.errs = map[string][]error{}
	}
	out := make([]*packet.Packet, count)
	for i := range out {
		p := fixedPacket(i)
		id := p.ID
		p.Nack = func(err error) {
			n.mu.Lock()
			n.errs[id] = append(n.errs[id], err)
			n.mu.Unlock()
		}
		out[i] = p
	}
	return out
}

// deliver runs packets through the sink as the runtime does at the end of
// its input: ProcessBatch, then Flush.
func deliver(s *httpSink, c plugin.Emitter, in ...*packet.Packet) error {
	ctx := context.Background()
	if err := s.ProcessBatch(ctx, in, c); err != nil {
		return err
	}
	return s.Flush(ctx, c)
}

// waitUntil polls cond (not a synchronisation by sleeping: the condition
// decides, the deadline only bounds a failing test).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// probeEmitter records, for every emitted packet, how many requests the
// server had answered at that moment.
type probeEmitter struct {
	plugintest.Collector
	rc       *receiver
	mu       sync.Mutex
	atCounts []int
}

func (e *probeEmitter) Emit(p *packet.Packet) error {
	e.mu.Lock()
	e.atCounts = append(e.atCounts, e.rc.count())
	e.mu.Unlock()
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
	if err := deliver(s, em, p); err != nil {
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
		if _, has := r.header["Idempotency-Keys"]; has {
			t.Errorf("request %d: a single-packet request must not carry the batch keys header", i)
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

func TestHTTPSinkOutageLongerThanBudgetNacksPacket(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	url := strings.Replace(rc.srv.URL, "http://", "http://ops:s3cret@", 1) + "/events"
	s := startHTTPSink(t, "url", url, "retry_max_attempts", int64(3), "retry_backoff_sec", 0.01, "forward", true)
	var nk nacks
	in := nk.packets(1)
	c := &plugintest.Collector{}
	if err := deliver(s, c, in...); err != nil {
		t.Fatalf("err = %v, want nil (the packet fails alone)", err)
	}
	if rc.count() != 3 {
		t.Errorf("server saw %d requests, want 3 attempts", rc.count())
	}
	if len(c.Packets()) != 0 {
		t.Errorf("forwarded a packet that was not delivered")
	}
	errs := nk.get(in[0].ID)
	if len(errs) != 1 {
		t.Fatalf("nacks %v, want exactly one", errs)
	}
	err := errs[0]
	if packet.IsPermanent(err) {
		t.Errorf("a 503 outage is not permanent: %v", err)
	}
	if metricValue(t, s, "failed_total") != 1 || metricValue(t, s, "retry_total") != 2 || metricValue(t, s, "posted_total") != 0 {
		t.Errorf("metrics %v", s.Metrics())
	}
	if lost := plugintest.Lost(t, testRegistry(), httpSinkName, s); lost != 1 {
		t.Errorf("lost %d, want 1: failed_total is a Loss metric", lost)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("password leaked: %s", err)
	}
	if !strings.Contains(err.Error(), "3 attempts") || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("error %q should name the attempts and the last status", err)
	}
	if user, pass, ok := (&http.Request{Header: rc.requests()[0].header}).BasicAuth(); !ok || user != "ops" || pass != "s3cret" {
		t.Errorf("URL credentials not sent as basic auth: %q %q %v", user, pass, ok)
	}
}

func TestHTTPSinkRaiseOnFailEndsRun(t *testing.T) {
	rc := newReceiver(t, always(http.StatusInternalServerError))
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_max_attempts", int64(2), "retry_backoff_sec", int64(0), "raise_on_fail", true)
	var nk nacks
	err := deliver(s, &plugintest.Collector{}, nk.packets(1)...)
	var pe *plugin.PacketError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a run-ending error (not a PacketError)", err)
	}
	if !strings.Contains(err.Error(), "http delivery failed") {
		t.Errorf("err = %v", err)
	}
	// Later input is not tried: the run is ending.
	before := rc.count()
	if err := s.ProcessBatch(context.Background(), nk.packets(2), &plugintest.Collector{}); err == nil {
		t.Errorf("ProcessBatch after the give-up must keep returning the error")
	}
	if rc.count() != before {
		t.Errorf("requests sent after raise_on_fail ended the run")
	}
}

// TestHTTPSinkStatusClasses checks each status class: delivered,
// retried then nacked, permanent (nacked as packet.Permanent at once),
// redirect (not followed, nacked, not retried).
func TestHTTPSinkStatusClasses(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		retryOn   []any // nil: default list
		batch     int   // batch_max_count
		wantReqs  int
		wantOK    bool
		permanent bool
		errHas    string
	}{
		{"400 is permanent", 400, nil, 1, 1, false, true, "HTTP 400: bad field"},
		{"404 is permanent", 404, nil, 1, 1, false, true, "HTTP 404"},
		{"422 is permanent", 422, nil, 1, 1, false, true, "HTTP 422"},
		{"400 listed is retried", 400, []any{int64(400), "503"}, 1, 3, false, false, "3 attempts"},
		{"409 retried by default (upstream's list)", 409, nil, 1, 3, false, false, "HTTP 409"},
		{"408 retried", 408, []any{}, 1, 3, false, false, "HTTP 408"},
		{"429 retried", 429, []any{}, 1, 3, false, false, "HTTP 429"},
		{"503 retried even with an empty list", 503, []any{}, 1, 3, false, false, "HTTP 503"},
		{"501 retried (every 5xx)", 501, nil, 1, 3, false, false, "HTTP 501"},
		{"302 is not followed", 302, nil, 1, 1, false, false, "redirect to /elsewhere not followed"},
		{"301 is not followed", 301, nil, 1, 1, false, false, "HTTP 301"},
		{"413 to one packet is permanent", 413, nil, 1, 1, false, true, "HTTP 413"},
		{"413 to a batch is not", 413, nil, 5, 1, false, false, "lower batch_max_count"},
		{"201 is success", 201, nil, 1, 1, true, false, ""},
		{"204 is success", 204, nil, 1, 1, true, false, ""},
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
			// A body with a line break and longer than the excerpt.
			rc.respBody = "bad field\n\"name\"" + strings.Repeat(" y", 500)
			kv := []any{"url", rc.srv.URL + "/in", "retry_max_attempts", int64(3), "retry_backoff_sec", 0.001, "batch_max_count", int64(tc.batch)}
			if tc.retryOn != nil {
				kv = append(kv, "retry_on_status", tc.retryOn)
			}
			s := startHTTPSink(t, kv...)
			var nk nacks
			in := nk.packets(tc.batch)
			if err := deliver(s, &plugintest.Collector{}, in...); err != nil {
				t.Fatalf("err = %v", err)
			}
			if rc.count() != tc.wantReqs {
				t.Errorf("server saw %d requests, want %d", rc.count(), tc.wantReqs)
			}
			for _, p := range in {
				errs := nk.get(p.ID)
				if tc.wantOK {
					if len(errs) != 0 {
						t.Errorf("%s nacked: %v", p.ID, errs)
					}
					continue
				}
				if len(errs) != 1 {
					t.Fatalf("%s: nacks %v, want one", p.ID, errs)
				}
				if packet.IsPermanent(errs[0]) != tc.permanent {
					t.Errorf("IsPermanent(%v) = %v, want %v", errs[0], !tc.permanent, tc.permanent)
				}
				if !strings.Contains(errs[0].Error(), tc.errHas) {
					t.Errorf("nack error %q, want it to contain %q", errs[0], tc.errHas)
				}
				if len(errs[0].Error()) > 400 {
					t.Errorf("nack error is not an excerpt: %d bytes", len(errs[0].Error()))
				}
			}
			wantPosted := int64(0)
			if tc.wantOK {
				wantPosted = int64(tc.batch)
			}
			if got := metricValue(t, s, "posted_total"); got != wantPosted {
				t.Errorf("posted_total = %d, want %d", got, wantPosted)
			}
			if tc.status/100 == 3 && metricValue(t, s, "redirect_total") != 1 {
				t.Errorf("redirect_total = %d, want 1", metricValue(t, s, "redirect_total"))
			}
			if tc.permanent && metricValue(t, s, "permanent_total") != int64(tc.batch) {
				t.Errorf("permanent_total = %d", metricValue(t, s, "permanent_total"))
			}
		})
	}
}

func TestHTTPSinkGarbage200IsDelivered(t *testing.T) {
	rc := newReceiver(t, always(200))
	rc.respBody = "\x00\xff{not json"
	s := startHTTPSink(t, "url", rc.srv.URL, "forward", true)
	c := &plugintest.Collector{}
	var nk nacks
	if err := deliver(s, c, nk.packets(2)...); err != nil {
		t.Fatal(err)
	}
	if len(c.Packets()) != 2 || nk.total() != 0 {
		t.Errorf("forwarded %d, nacked %d; want a 2xx with a garbage body delivered", len(c.Packets()), nk.total())
	}
}

// TestHTTPSinkReceiverClosingMidResponseIsRetried: the first answers are
// cut off by the receiver (after the status line, mid-body; and before
// any byte), which is a connection error and retried.
func TestHTTPSinkReceiverClosingMidResponseIsRetried(t *testing.T) {
	for _, mode := range []string{"mid-body", "no response"} {
		t.Run(mode, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if n.Add(1) > 2 {
					w.WriteHeader(200)
					return
				}
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				if mode == "mid-body" {
					buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
					buf.Flush()
				}
				conn.Close()
			}))
			defer srv.Close()
			s := startHTTPSink(t, "url", srv.URL, "retry_max_attempts", int64(3), "retry_backoff_sec", 0.001, "forward", true)
			var nk nacks
			c := &plugintest.Collector{}
			if err := deliver(s, c, nk.packets(1)...); err != nil {
				t.Fatal(err)
			}
			if n.Load() != 3 || len(c.Packets()) != 1 || nk.total() != 0 {
				t.Errorf("requests %d, forwarded %d, nacks %d; want 3, 1, 0", n.Load(), len(c.Packets()), nk.total())
			}
			if metricValue(t, s, "retry_total") != 2 {
				t.Errorf("retry_total = %d", metricValue(t, s, "retry_total"))
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
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_backoff_sec", 0.001, "max_in_flight", int64(1))
	for i := 0; i < 30; i++ {
		p := packet.New("e", "s", packet.MapOf("i", int64(i)), "", nil)
		if err := deliver(s, &plugintest.Collector{}, p); err != nil {
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

// TestHTTPSinkConcurrentRequestsOverlap: with max_in_flight 8 the server
// sees 8 requests at once (each waits until 8 are in), never more, and
// the connections are kept: as many as max_in_flight, not one per packet.
func TestHTTPSinkConcurrentRequestsOverlap(t *testing.T) {
	const window, total = 8, 64
	release := make(chan struct{})
	var once sync.Once
	var rc *receiver
	rc = newReceiver(t, func(int, *http.Request) int {
		if rc.cur.Load() >= window {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-time.After(10 * time.Second): // fails the peak check below
		}
		return http.StatusOK
	})
	s := startHTTPSink(t, "url", rc.srv.URL, "max_in_flight", int64(window), "forward", true)
	c := &plugintest.Collector{}
	var nk nacks
	if err := deliver(s, c, nk.packets(total)...); err != nil {
		t.Fatal(err)
	}
	if p := rc.peak.Load(); p != window {
		t.Errorf("peak concurrent requests %d, want %d", p, window)
	}
	if len(c.Packets()) != total {
		t.Errorf("forwarded %d of %d", len(c.Packets()), total)
	}
	if n := rc.newConns.Load(); n > window {
		t.Errorf("%d connections for max_in_flight %d", n, window)
	}
}

// TestHTTPSinkStrictOrderWithOneInFlight: with max_in_flight 1 the
// receiver gets the packets one at a time in input order, a retried one
// included, and they are forwarded in that order.
func TestHTTPSinkStrictOrderWithOneInFlight(t *testing.T) {
	var fails atomic.Int64
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		if r.Header.Get("Idempotency-Key") == "k3" && fails.Add(1) <= 2 {
			return http.StatusServiceUnavailable // twice, then accepted
		}
		return http.StatusOK
	})
	s := startHTTPSink(t, "url", rc.srv.URL, "max_in_flight", int64(1), "retry_backoff_sec", 0.001, "forward", true)
	c := &plugintest.Collector{}
	var nk nacks
	in := nk.packets(20)
	// Two input batches: order holds across ProcessBatch calls too.
	if err := s.ProcessBatch(context.Background(), in[:7], c); err != nil {
		t.Fatal(err)
	}
	if err := deliver(s, c, in[7:]...); err != nil {
		t.Fatal(err)
	}
	if p := rc.peak.Load(); p != 1 {
		t.Errorf("peak concurrent requests %d, want 1", p)
	}
	var got []string
	for _, r := range rc.requests() {
		got = append(got, r.header.Get("Idempotency-Key"))
	}
	var want []string
	for i := range in {
		want = append(want, fmt.Sprintf("k%d", i))
		if i == 3 {
			want = append(want, "k3", "k3") // the retries come before k4
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("receiver order %v, want %v", got, want)
	}
	var fwd []string
	for _, p := range c.Packets() {
		fwd = append(fwd, p.ID)
	}
	var ids []string
	for _, p := range in {
		ids = append(ids, p.ID)
	}
	if strings.Join(fwd, ",") != strings.Join(ids, ",") {
		t.Errorf("forward order %v", fwd)
	}
}

// TestHTTPSinkForwardsEachAsSoonAsDelivered: a packet is forwarded when its
// own 2xx arrives, while a slower packet of the same input batch is still
// in flight.
func TestHTTPSinkForwardsEachAsSoonAsDelivered(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		if r.Header.Get("Idempotency-Key") == "k0" {
			<-release // the first packet is slow
		}
		return http.StatusOK
	})
	s := startHTTPSink(t, "url", rc.srv.URL, "max_in_flight", int64(4), "forward", true)
	c := &plugintest.Collector{}
	var nk nacks
	in := nk.packets(3)
	done := make(chan error, 1)
	go func() { done <- deliver(s, c, in...) }()
	waitUntil(t, "p-1 and p-2 forwarded while p-0 is in flight", func() bool { return len(c.Packets()) == 2 })
	for _, p := range c.Packets() {
		if p.ID == "p-0" {
			t.Errorf("p-0 forwarded before its 2xx")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Flush returned (%v) while p-0 was in flight", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(c.Packets()) != 3 {
		t.Errorf("forwarded %d, want 3", len(c.Packets()))
	}
}

func TestHTTPSinkBatches(t *testing.T) {
	for _, format := range []string{"json_array", "ndjson"} {
		t.Run(format, func(t *testing.T) {
			rc := newReceiver(t, always(200))
			// One request at a time, so the receiver sees them in order.
			s := startHTTPSink(t, "url", rc.srv.URL, "batch_max_count", int64(3), "batch_format", format, "forward", true, "max_in_flight", int64(1))
			c := &plugintest.Collector{}
			var nk nacks
			in := nk.packets(7)
			in[4].Meta = nil // key falls back to the packet id
			in[5].Meta = packet.MapOf("idempotency_key", "ü\n\"q\"")
			if err := deliver(s, c, in...); err != nil {
				t.Fatal(err)
			}
			reqs := rc.requests()
			if len(reqs) != 3 {
				t.Fatalf("%d requests for 7 packets in batches of 3, want 3", len(reqs))
			}
			var keys [][]string
			var bodies [][]string
			for _, r := range reqs {
				var k []string
				if err := json.Unmarshal([]byte(r.header.Get("Idempotency-Keys")), &k); err != nil {
					t.Fatalf("Idempotency-Keys %q: %v", r.header.Get("Idempotency-Keys"), err)
				}
				keys = append(keys, k)
				if _, has := r.header["Idempotency-Key"]; has {
					t.Errorf("a batch must not carry the single-packet header")
				}
				var recs []string
				switch format {
				case "json_array":
					if ct := r.header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type %q", ct)
					}
					var arr []json.RawMessage
					if err := json.Unmarshal([]byte(r.body), &arr); err != nil {
						t.Fatalf("body %q: %v", r.body, err)
					}
					for _, a := range arr {
						recs = append(recs, string(a))
					}
					if !strings.HasPrefix(r.body, "[{") || !strings.Contains(r.body, "}, {") && len(arr) > 1 {
						t.Errorf("body %q is not json.dumps of a list", r.body)
					}
				case "ndjson":
					if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
						t.Errorf("Content-Type %q", ct)
					}
					if !strings.HasSuffix(r.body, "\n") {
						t.Errorf("NDJSON body must end with a newline: %q", r.body)
					}
					recs = strings.Split(strings.TrimSuffix(r.body, "\n"), "\n")
				}
				bodies = append(bodies, recs)
			}
			wantKeys := [][]string{{"k0", "k1", "k2"}, {"k3", "p-4", "ü\n\"q\""}, {"k6"}}
			if fmt.Sprint(keys) != fmt.Sprint(wantKeys) {
				t.Errorf("keys %q, want %q", keys, wantKeys)
			}
			i := 0
			for _, recs := range bodies {
				for _, rec := range recs {
					want, _ := appendRecord(nil, in[i], false, packet.JSONOptions{})
					if rec != string(want) {
						t.Errorf("record %d = %s, want upstream's body %s", i, rec, want)
					}
					i++
				}
			}
			if len(c.Packets()) != 7 || metricValue(t, s, "posted_total") != 7 || metricValue(t, s, "requests_total") != 3 {
				t.Errorf("forwarded %d, metrics %v", len(c.Packets()), s.Metrics())
			}
		})
	}
}

func TestHTTPSinkBatchMaxBytes(t *testing.T) {
	rc := newReceiver(t, always(200))
	one, _ := appendRecord(nil, fixedPacket(0), false, packet.JSONOptions{})
	// Room for two records (and separators) per request, not three.
	s := startHTTPSink(t, "url", rc.srv.URL, "batch_max_count", int64(100), "batch_max_bytes", int64(2*len(one)+6), "max_in_flight", int64(1))
	var nk nacks
	if err := deliver(s, &plugintest.Collector{}, nk.packets(5)...); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, r := range rc.requests() {
		var arr []json.RawMessage
		json.Unmarshal([]byte(r.body), &arr)
		sizes = append(sizes, len(arr))
	}
	if fmt.Sprint(sizes) != "[2 2 1]" {
		t.Errorf("batch sizes %v, want [2 2 1]", sizes)
	}
}

// TestHTTPSinkBatchPeriod: a partial batch waits batch_period_sec for more
// packets from later input batches, then goes out.
func TestHTTPSinkBatchPeriod(t *testing.T) {
	rc := newReceiver(t, always(200))
	s := startHTTPSink(t, "url", rc.srv.URL, "batch_max_count", int64(10), "batch_period_sec", 0.2, "forward", true)
	c := &plugintest.Collector{}
	var nk nacks
	in := nk.packets(4)
	for _, p := range in[:3] {
		if err := s.ProcessBatch(context.Background(), []*packet.Packet{p}, c); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the period to send the partial batch", func() bool { return len(c.Packets()) == 3 })
	if n := rc.count(); n != 1 {
		t.Errorf("%d requests for 3 packets within one period, want 1", n)
	}
	if err := deliver(s, c, in[3]); err != nil {
		t.Fatal(err)
	}
	if rc.count() != 2 || len(c.Packets()) != 4 {
		t.Errorf("Flush must send the partial batch at once: %d requests, %d forwarded", rc.count(), len(c.Packets()))
	}
}

func TestHTTPSinkTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, hang(release))
	s := startHTTPSink(t, "url", rc.srv.URL, "timeout_sec", 0.1, "retry_max_attempts", int64(2), "retry_backoff_sec", 0.01)
	var nk nacks
	in := nk.packets(1)
	t0 := time.Now()
	if err := deliver(s, &plugintest.Collector{}, in...); err != nil {
		t.Fatal(err)
	}
	el := time.Since(t0)
	errs := nk.get(in[0].ID)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "timeout") || packet.IsPermanent(errs[0]) {
		t.Fatalf("nacks %v, want one naming the timeout", errs)
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
	var nk nacks
	in := nk.packets(1)
	if err := deliver(s, &plugintest.Collector{}, in...); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, s, "retry_total"); got != 2 {
		t.Errorf("retry_total = %d, want 2", got)
	}
	if errs := nk.get(in[0].ID); len(errs) != 1 || packet.IsPermanent(errs[0]) {
		t.Errorf("nacks %v", errs)
	}
}

// TestHTTPSinkStopsPromptlyOnCancel: when the runtime cancels the node
// context, the waits end at once and nothing is nacked.
func TestHTTPSinkStopsPromptlyOnCancel(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_max_attempts", int64(5), "retry_backoff_sec", int64(30))
	ctx, cancel := context.WithCancel(context.Background())
	var nk nacks
	done := make(chan error, 1)
	go func() {
		in := nk.packets(3)
		if err := s.ProcessBatch(ctx, in, &plugintest.Collector{}); err != nil {
			done <- err
			return
		}
		done <- s.Flush(ctx, &plugintest.Collector{})
	}()
	waitUntil(t, "the first requests", func() bool { return rc.count() >= 3 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("err = %v, want nil: an interrupted delivery is not a failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Flush did not return after cancel (backoff wait not cancellable)")
	}
	if nk.total() != 0 || metricValue(t, s, "failed_total") != 0 {
		t.Errorf("an interrupted delivery is not a give-up: %d nacks", nk.total())
	}
	if metricValue(t, s, "interrupted_total") != 3 {
		t.Errorf("interrupted_total = %d, want 3", metricValue(t, s, "interrupted_total"))
	}
}

// TestHTTPSinkStoppingWithHungReceiver: after Stopping, requests in flight
// get stop_timeout_sec and are then cancelled; packets not yet sent are
// left; nothing is nacked and no new request starts.
func TestHTTPSinkStoppingWithHungReceiver(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, hang(release))
	s := startHTTPSink(t, "url", rc.srv.URL, "max_in_flight", int64(4), "timeout_sec", int64(600), "stop_timeout_sec", 0.3, "forward", true)
	var nk nacks
	c := &plugintest.Collector{}
	done := make(chan error, 1)
	go func() { done <- deliver(s, c, nk.packets(40)...) }()
	waitUntil(t, "4 requests in flight", func() bool { return rc.count() == 4 })
	s.Stopping()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second): // stop_timeout_sec is 0.3 s: generous bound
		t.Fatal("Flush did not return after Stopping with a hung receiver")
	}
	if rc.count() != 4 {
		t.Errorf("%d requests, want 4: none after Stopping", rc.count())
	}
	if nk.total() != 0 || len(c.Packets()) != 0 {
		t.Errorf("nacked %d, forwarded %d; want neither", nk.total(), len(c.Packets()))
	}
	if got := [2]int64{metricValue(t, s, "interrupted_total"), metricValue(t, s, "left_on_stop_total")}; got != [2]int64{4, 36} {
		t.Errorf("interrupted, left = %v, want [4 36]", got)
	}
	// Input arriving after the stop is left too, at once.
	if err := deliver(s, c, nk.packets(5)...); err != nil || rc.count() != 4 {
		t.Errorf("after stop: err %v, %d requests", err, rc.count())
	}
}

// TestHTTPSinkNoRetryBurstOnStop: during a 503 outage with many requests
// retrying, Stopping sends no further request (at most the attempts that
// were already on their way) and nacks nothing.
func TestHTTPSinkNoRetryBurstOnStop(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	s := startHTTPSink(t, "url", rc.srv.URL, "max_in_flight", int64(16), "retry_max_attempts", int64(1000),
		"retry_backoff_sec", 0.002, "retry_backoff_max_sec", 0.004)
	var nk nacks
	done := make(chan error, 1)
	go func() { done <- deliver(s, &plugintest.Collector{}, nk.packets(200)...) }()
	waitUntil(t, "retries under way", func() bool { return metricValue(t, s, "retry_total") > 100 })
	s.Stopping()
	at := rc.count()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := rc.count(); after > at+16 {
		t.Errorf("%d requests after Stopping, want at most the 16 already in flight", after-at)
	}
	if nk.total() != 0 {
		t.Errorf("%d packets nacked on stop, want 0", nk.total())
	}
	if got := metricValue(t, s, "interrupted_total") + metricValue(t, s, "left_on_stop_total"); got != 200 {
		t.Errorf("interrupted + left = %d, want 200", got)
	}
}

func TestHTTPSinkRetryAfterIsHonouredUpToTheCap(t *testing.T) {
	rc := newReceiver(t, failFirst(1, http.StatusTooManyRequests))
	rc.extra = func(w http.ResponseWriter) { w.Header().Set("Retry-After", "5") }
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_backoff_sec", 0.01, "retry_backoff_max_sec", 0.3)
	if err := deliver(s, &plugintest.Collector{}, packet.New("e", "s", int64(1), "", nil)); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
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
	if err := deliver(s, &plugintest.Collector{}, p); err != nil {
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

func TestHTTPSinkBadKeyIsPermanent(t *testing.T) {
	rc := newReceiver(t, always(200))
	s := startHTTPSink(t, "url", rc.srv.URL)
	var nk nacks
	in := nk.packets(1)
	in[0].Meta = packet.MapOf("idempotency_key", "a\nb")
	if err := deliver(s, &plugintest.Collector{}, in...); err != nil {
		t.Fatal(err)
	}
	if errs := nk.get(in[0].ID); len(errs) != 1 || !packet.IsPermanent(errs[0]) || rc.count() != 0 {
		t.Errorf("nacks %v, %d requests; want one permanent nack and no request", errs, rc.count())
	}
}

func TestHTTPSinkNonJSONPayloadEndsRunWithoutRequest(t *testing.T) {
	rc := newReceiver(t, always(200))
	s := startHTTPSink(t, "url", rc.srv.URL, "forward", true)
	c := &plugintest.Collector{}
	in := []*packet.Packet{fixedPacket(0), packet.New("frame", "cam", frameLike{}, "", nil)}
	err := s.ProcessBatch(context.Background(), in, c)
	var pe *plugin.PacketError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "not JSON-serializable") {
		t.Fatalf("err = %v", err)
	}
	if rc.count() != 1 || len(c.Packets()) != 1 {
		t.Errorf("%d requests, %d forwarded: the packet before the bad one is delivered, the bad one never sent", rc.count(), len(c.Packets()))
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
		{"absurd attempts", packet.MapOf("url", "http://h", "retry_max_attempts", int64(1e6)), "retry_max_attempts"},
		{"zero timeout", packet.MapOf("url", "http://h", "timeout_sec", int64(0)), "timeout_sec"},
		{"huge timeout", packet.MapOf("url", "http://h", "timeout_sec", 3601.0), "timeout_sec"},
		{"negative backoff", packet.MapOf("url", "http://h", "retry_backoff_sec", -1.0), "retry_backoff_sec"},
		{"huge backoff max", packet.MapOf("url", "http://h", "retry_backoff_max_sec", 1e10), "retry_backoff_max_sec"},
		{"bad body", packet.MapOf("url", "http://h", "body", "frames"), "config.body"},
		{"bad status", packet.MapOf("url", "http://h", "retry_on_status", []any{int64(5)}), "retry_on_status[0]"},
		{"non-int status", packet.MapOf("url", "http://h", "retry_on_status", []any{"x"}), "retry_on_status[0]"},
		{"bad forward", packet.MapOf("url", "http://h", "forward", "maybe"), "config.forward"},
		{"bad header name", packet.MapOf("url", "http://h", "headers", packet.MapOf("a b", "x")), "headers"},
		{"env strings", packet.MapOf("url", "http://h", "retry_max_attempts", "4", "forward", "false", "timeout_sec", "0.5"), ""},
		{"secret not echoed", packet.MapOf("url", "gopher://u:topsecret@h/"), "***:***@h"},
		{"zero in flight", packet.MapOf("url", "http://h", "max_in_flight", int64(0)), "config.max_in_flight"},
		{"negative in flight", packet.MapOf("url", "http://h", "max_in_flight", int64(-3)), "config.max_in_flight"},
		{"absurd in flight", packet.MapOf("url", "http://h", "max_in_flight", int64(4097)), "config.max_in_flight"},
		{"max in flight", packet.MapOf("url", "http://h", "max_in_flight", int64(4096)), ""},
		{"zero batch", packet.MapOf("url", "http://h", "batch_max_count", int64(0)), "config.batch_max_count"},
		{"absurd batch", packet.MapOf("url", "http://h", "batch_max_count", int64(10001)), "config.batch_max_count"},
		{"zero batch bytes", packet.MapOf("url", "http://h", "batch_max_bytes", int64(0)), "config.batch_max_bytes"},
		{"absurd batch bytes", packet.MapOf("url", "http://h", "batch_max_bytes", int64(64<<20+1)), "config.batch_max_bytes"},
		{"negative period", packet.MapOf("url", "http://h", "batch_period_sec", -0.5), "config.batch_period_sec"},
		{"huge period", packet.MapOf("url", "http://h", "batch_period_sec", 1e9), "config.batch_period_sec"},
		{"bad format", packet.MapOf("url", "http://h", "batch_format", "csv"), "config.batch_format"},
		{"negative stop timeout", packet.MapOf("url", "http://h", "stop_timeout_sec", -1.0), "config.stop_timeout_sec"},
		{"huge stop timeout", packet.MapOf("url", "http://h", "stop_timeout_sec", 7200.0), "config.stop_timeout_sec"},
		{"bad keys header", packet.MapOf("url", "http://h", "idempotency_keys_header", "a b"), "config.idempotency_keys_header"},
		{"batched ndjson", packet.MapOf("url", "http://h", "batch_max_count", int64(100), "batch_format", "ndjson", "batch_period_sec", 0.5), ""},
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
	s := plugintest.Build(t, testRegistry(), httpSinkName, "sink", packet.MapOf("url", " http://h/x ", "forward", "false", "retry_backoff_sec", 2.0, "retry_backoff_max_sec", 0.0)).(*httpSink)
	if s.cfg.Forward || s.cfg.URL != "http://h/x" || s.backoff != 2*time.Second || s.backoffMax != 2*time.Second || s.cfg.Method != "POST" {
		t.Errorf("normalised config %+v", s.cfg)
	}
	if s.cfg.MaxInFlight != 64 || s.cfg.BatchMaxCount != 1 || s.cfg.StopTimeoutSec != 5 {
		t.Errorf("defaults %+v", s.cfg)
	}
}

func TestHTTPSinkTransportSizedToWindow(t *testing.T) {
	s := startHTTPSink(t, "url", "http://127.0.0.1:1/x", "max_in_flight", int64(200))
	if s.transport.MaxIdleConnsPerHost != 200 || s.transport.MaxConnsPerHost != 200 || s.transport.MaxIdleConns < 200 {
		t.Errorf("transport idle/host %d, conns/host %d, idle %d; want 200", s.transport.MaxIdleConnsPerHost, s.transport.MaxConnsPerHost, s.transport.MaxIdleConns)
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

func TestExcerpt(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "(empty body)"},
		{"  bad\r\n\tfield  ", "bad field"},
		{"\xff\x00ok", "? ok"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "..."},
	}
	for _, tc := range cases {
		if got := excerpt([]byte(tc.in)); got != tc.want {
			t.Errorf("excerpt(%q) = %q, want %q", tc.in, got, tc.want)
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
			s := startHTTPSink(t, "url", rc.srv.URL, "body", body, "retry_max_attempts", int64(1), "max_in_flight", int64(1))
			for i := 0; i < 2; i++ {
				p := fixedPacket(i)
				if i == 0 {
					p.Meta = nil
				}
				if err := deliver(s, &plugintest.Collector{}, p); err != nil {
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

// TestHTTPSinkGivesBackNothingOnGracefulStop: a stop during a retry wait
// ends the wait at once; the packet is neither retried nor nacked.
func TestHTTPSinkGivesBackNothingOnGracefulStop(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	s := startHTTPSink(t, "url", rc.srv.URL, "retry_max_attempts", int64(50), "retry_backoff_sec", int64(30))
	var nk nacks
	done := make(chan error, 1)
	go func() { done <- deliver(s, &plugintest.Collector{}, nk.packets(1)...) }()
	waitUntil(t, "the first attempt", func() bool { return metricValue(t, s, "retry_total") == 1 })
	s.Stopping()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Flush kept waiting for a retry after Stopping")
	}
	if rc.count() != 1 {
		t.Errorf("%d requests, want 1: no retry once stopping", rc.count())
	}
	if nk.total() != 0 || metricValue(t, s, "failed_total") != 0 || metricValue(t, s, "interrupted_total") != 1 {
		t.Errorf("nacks %d, metrics %v: a packet interrupted by the stop is not a give-up", nk.total(), s.Metrics())
	}
}

// TestHTTPSinkCancelWhileWindowFull: the node context ends while every
// worker is busy and more input waits for one: ProcessBatch and Flush
// return promptly, nothing is nacked, every packet is counted as
// interrupted or left.
func TestHTTPSinkCancelWhileWindowFull(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, hang(release))
	s := startHTTPSink(t, "url", rc.srv.URL, "max_in_flight", int64(2), "timeout_sec", int64(600))
	ctx, cancel := context.WithCancel(context.Background())
	var nk nacks
	in := nk.packets(30)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < len(in); i += 5 { // several input batches: the later ones block
			if err := s.ProcessBatch(ctx, in[i:i+5], &plugintest.Collector{}); err != nil {
				done <- err
				return
			}
		}
		done <- s.Flush(ctx, &plugintest.Collector{})
	}()
	waitUntil(t, "both workers busy", func() bool { return rc.count() == 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ProcessBatch/Flush did not return after the context ended")
	}
	if nk.total() != 0 || rc.count() != 2 {
		t.Errorf("nacks %d, requests %d; want 0 and 2", nk.total(), rc.count())
	}
	if got := metricValue(t, s, "interrupted_total") + metricValue(t, s, "left_on_stop_total"); got != 30 {
		t.Errorf("interrupted + left = %d, want 30", got)
	}
}
