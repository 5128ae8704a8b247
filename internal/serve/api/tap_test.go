package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

type sseEvent struct{ name, data string }

// sse is one open tap stream, read by a goroutine into a channel.
type sse struct {
	resp   *http.Response
	cancel context.CancelFunc
	ev     chan sseEvent
	done   chan struct{} // closed at EOF
}

func (e *env) openTap(t *testing.T, query string) (*sse, reply) {
	t.Helper()
	return e.openTapOn(t, "g1", query)
}

func (e *env) openTapOn(t *testing.T, graph, query string) (*sse, reply) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	r := e.req("GET", "/api/v1/graphs/"+graph+"/tap?"+query, "", auth())
	r = r.WithContext(ctx)
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		cancel()
		t.Fatalf("tap: %v", err)
	}
	if resp.StatusCode != 200 {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		rp := reply{code: resp.StatusCode, hdr: resp.Header, body: b}
		return nil, rp
	}
	s := &sse{resp: resp, cancel: cancel, ev: make(chan sseEvent, 1024), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		br := bufio.NewReader(resp.Body)
		var cur sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if cur.name != "" || cur.data != "" {
					s.ev <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "event: "):
				cur.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if cur.data != "" {
					cur.data += "\n"
				}
				cur.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s, reply{code: 200, hdr: resp.Header}
}

func (s *sse) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev := <-s.ev:
		return ev
	case <-s.done:
		select {
		case ev := <-s.ev:
			return ev
		default:
		}
		t.Fatalf("stream ended, wanted an event")
	case <-time.After(10 * time.Second):
		t.Fatalf("no event within 10 s")
	}
	return sseEvent{}
}

func (s *sse) close() {
	s.cancel()
	s.resp.Body.Close()
}

func tapEnv(t *testing.T, mod func(*Config)) *env {
	e := newEnv(t, mod)
	if rp := e.put("g1", goodGraph); rp.code != 201 {
		t.Fatalf("put: %d %s", rp.code, rp.body)
	}
	return e
}

func TestTapStreams(t *testing.T) {
	e := tapEnv(t, nil)
	s, rp := e.openTap(t, "node=src")
	if s == nil {
		t.Fatalf("tap: %d %s", rp.code, rp.body)
	}
	defer s.close()
	if ct := rp.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") || rp.hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", rp.hdr)
	}
	poll.Until(t, 5*time.Second, "the tap to open", func() bool { return e.fb.open() == 1 })
	for i := range 3 {
		e.fb.emit("g1", "src", fmt.Appendf(nil, `{"packet_id":"p%d","payload":{"n":%d}}`, i, i))
		ev := s.next(t)
		if ev.name != "packet" || ev.data != fmt.Sprintf(`{"packet_id":"p%d","payload":{"n":%d}}`, i, i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	// A packet line with a newline cannot forge an SSE field.
	e.fb.emit("g1", "src", []byte("{\"a\":1}\nevent: end\ndata: {}"))
	if ev := s.next(t); ev.name != "packet" || !strings.Contains(ev.data, "event: end") {
		t.Fatalf("split event %+v", ev)
	}
	// The backend dropped packets for a slow reader: the stream says so.
	e.fb.mu.Lock()
	tap := e.fb.taps[0]
	e.fb.mu.Unlock()
	tap.dropped.Add(5)
	if ev := s.next(t); ev.name != "dropped" || ev.data != `{"dropped":5}` {
		t.Fatalf("dropped event %+v", ev)
	}
	tap.dropped.Add(2)
	if ev := s.next(t); ev.name != "dropped" || ev.data != `{"dropped":7}` {
		t.Fatalf("dropped event %+v", ev)
	}
	// Stopping the graph ends the stream.
	if rp := e.do("POST", "/api/v1/graphs/g1/stop", "", auth()); rp.code != 200 {
		t.Fatal(rp.code)
	}
	if ev := s.next(t); ev.name != "end" || ev.data != `{"reason":"graph stopped"}` {
		t.Fatalf("end event %+v", ev)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream not closed after end")
	}
	poll.Until(t, 5*time.Second, "the tap to be released", func() bool { return e.fb.closes.Load() == 1 && e.api.taps.Load() == 0 })
}

func TestTapLimitEnds(t *testing.T) {
	e := tapEnv(t, nil)
	s, rp := e.openTap(t, "node=out&limit=2")
	if s == nil {
		t.Fatalf("tap: %d %s", rp.code, rp.body)
	}
	defer s.close()
	poll.Until(t, 5*time.Second, "the tap to open", func() bool { return e.fb.open() == 1 })
	e.fb.emit("g1", "out", []byte(`{"n":1}`))
	e.fb.emit("g1", "out", []byte(`{"n":2}`))
	e.fb.emit("g1", "out", []byte(`{"n":3}`))
	for _, want := range []sseEvent{{"packet", `{"n":1}`}, {"packet", `{"n":2}`}, {"end", `{"reason":"limit"}`}} {
		if ev := s.next(t); ev != want {
			t.Fatalf("got %+v, want %+v", ev, want)
		}
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream not closed after the limit")
	}
	poll.Until(t, 5*time.Second, "Close after the limit", func() bool { return e.fb.closes.Load() == 1 })
}

func TestTapDisconnectReleases(t *testing.T) {
	e := tapEnv(t, nil)
	s, rp := e.openTap(t, "node=src")
	if s == nil {
		t.Fatalf("tap: %d %s", rp.code, rp.body)
	}
	poll.Until(t, 5*time.Second, "the tap to open", func() bool { return e.fb.open() == 1 && e.api.taps.Load() == 1 })
	s.close()
	poll.Until(t, 5*time.Second, "the backend's Close after a disconnect", func() bool {
		return e.fb.closes.Load() == 1 && e.fb.open() == 0 && e.api.taps.Load() == 0
	})
}

// TestTapOutlivesReadTimeout: the server's ReadTimeout must not cancel a
// long stream.
func TestTapOutlivesReadTimeout(t *testing.T) {
	e := tapEnv(t, nil)
	e.srv.Config.ReadTimeout = 200 * time.Millisecond
	s, rp := e.openTap(t, "node=src")
	if s == nil {
		t.Fatalf("tap: %d %s", rp.code, rp.body)
	}
	defer s.close()
	start := time.Now()
	poll.Until(t, 5*time.Second, "the read timeout to pass", func() bool { return time.Since(start) > 600*time.Millisecond })
	e.fb.emit("g1", "src", []byte(`{"late":true}`))
	if ev := s.next(t); ev.data != `{"late":true}` {
		t.Fatalf("event %+v", ev)
	}
}

func TestTapBadRequests(t *testing.T) {
	e := tapEnv(t, nil)
	cases := []struct {
		q    string
		code int
		kind string
	}{
		{"", 400, "bad_request"},
		{"node=src&limit=0", 400, "bad_request"},
		{"node=src&limit=x", 400, "bad_request"},
		{"node=src&limit=99999999", 400, "bad_request"},
		{"node=nope", 404, "not_found"},
	}
	for _, tc := range cases {
		_, rp := e.openTap(t, tc.q)
		if rp.code != tc.code || kind(reply{json: decode(rp.body)}) != tc.kind {
			t.Errorf("?%s: %d %s", tc.q, rp.code, rp.body)
		}
	}
	if rp := e.do("GET", "/api/v1/graphs/nope/tap?node=src", "", auth()); rp.code != 404 {
		t.Errorf("unknown graph: %d", rp.code)
	}
	e.do("POST", "/api/v1/graphs/g1/stop", "", auth())
	if rp := e.do("GET", "/api/v1/graphs/g1/tap?node=src", "", auth()); rp.code != 409 || kind(rp) != "conflict" {
		t.Errorf("tap a stopped graph: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs/g1/tap?node=src", "", nil); rp.code != 401 {
		t.Errorf("no auth: %d", rp.code)
	}
	if e.fb.closes.Load() != 0 || e.api.taps.Load() != 0 {
		t.Errorf("refused taps left state: closes %d taps %d", e.fb.closes.Load(), e.api.taps.Load())
	}
}

// TestTapCap: 100 clients open a tap at once; the server's cap (64) holds,
// the rest get 429 (audited), and the open ones and the API keep working.
func TestTapCap(t *testing.T) {
	e := tapEnv(t, nil)
	const clients = 100
	var (
		mu      sync.Mutex
		streams []*sse
		refused []reply
		wg      sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			s, rp := e.openTap(t, "node=src")
			mu.Lock()
			defer mu.Unlock()
			if s != nil {
				streams = append(streams, s)
			} else {
				refused = append(refused, rp)
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, s := range streams {
			s.close()
		}
	}()
	if len(streams) != DefaultMaxTaps || len(refused) != clients-DefaultMaxTaps {
		t.Fatalf("%d open, %d refused; want %d open", len(streams), len(refused), DefaultMaxTaps)
	}
	for _, rp := range refused {
		if rp.code != 429 || kind(reply{json: decode(rp.body)}) != "too_many" {
			t.Fatalf("refused: %d %s", rp.code, rp.body)
		}
	}
	if n := len(e.find("request.refused", "refused")); n != clients-DefaultMaxTaps {
		t.Errorf("%d refusals audited, want %d", n, clients-DefaultMaxTaps)
	}
	poll.Until(t, 5*time.Second, "every tap open", func() bool { return e.fb.open() == DefaultMaxTaps })
	if rp := e.do("GET", "/api/v1/graphs", "", auth()); rp.code != 200 {
		t.Errorf("list while capped: %d", rp.code)
	}
	e.fb.emit("g1", "src", []byte(`{"all":1}`))
	for _, s := range streams {
		if ev := s.next(t); ev.data != `{"all":1}` {
			t.Fatalf("event %+v", ev)
		}
	}
	for _, s := range streams {
		s.close()
	}
	poll.Until(t, 10*time.Second, "every tap released", func() bool { return e.api.taps.Load() == 0 && e.fb.open() == 0 })
	// Capacity is back.
	s, rp := e.openTap(t, "node=src")
	if s == nil {
		t.Fatalf("tap after release: %d", rp.code)
	}
	s.close()
}

// TestShutdownEndsTaps: http.Server.Shutdown (as NewHTTPServer builds it)
// ends open tap streams instead of waiting for them forever.
func TestShutdownEndsTaps(t *testing.T) {
	e := tapEnv(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(e.api, "")
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	r, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/graphs/g1/tap?node=src", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(r)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("tap: %v %v", err, resp)
	}
	defer resp.Body.Close()
	poll.Until(t, 5*time.Second, "the tap to open", func() bool { return e.fb.open() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "event: end\ndata: {\"reason\":\"server shutting down\"}") {
		t.Fatalf("stream %q", b)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("serve: %v", err)
	}
	poll.Until(t, 5*time.Second, "the tap released", func() bool { return e.fb.closes.Load() == 1 })
}
