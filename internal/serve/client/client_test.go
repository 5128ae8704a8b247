package client

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
)

// fakeBackend is a Backend with one graph "g" and a tap that replays
// fixed lines; "bad" YAML is invalid.
type fakeBackend struct {
	mu      sync.Mutex
	applied map[string]string
	actions []string
	tapped  chan []byte
}

func (b *fakeBackend) List() []serve.GraphStatus {
	return []serve.GraphStatus{{Name: "g", State: serve.StateRunning, Desired: "running", InPerSec: 10, OutPerSec: 10}}
}
func (b *fakeBackend) Get(name string) (*serve.GraphDetail, error) {
	if name != "g" {
		return nil, serve.ErrNotFound
	}
	return &serve.GraphDetail{GraphStatus: b.List()[0], YAML: "version: 2\n",
		Nodes: []serve.NodeStatus{{ID: "src", Kind: "source", Produced: 5}}}, nil
}
func (b *fakeBackend) Apply(name string, yaml []byte, o serve.ApplyOptions) (serve.ApplyResult, error) {
	if strings.Contains(string(yaml), "bad") {
		return serve.ApplyResult{}, &engine.InvalidError{Diags: engine.Diags{
			{File: name + ".yaml", Line: 3, Severity: graph.SevError, Subject: `node "x"`, Msg: "plugin not registered"}}}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.applied == nil {
		b.applied = map[string]string{}
	}
	_, had := b.applied[name]
	b.applied[name] = string(yaml)
	return serve.ApplyResult{Created: !had, Reloaded: had, ReloadTime: 3 * time.Millisecond}, nil
}
func (b *fakeBackend) act(what string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.actions = append(b.actions, what)
	return nil
}
func (b *fakeBackend) Delete(name, actor string) error  { return b.act("delete " + name) }
func (b *fakeBackend) Start(name, actor string) error   { return b.act("start " + name) }
func (b *fakeBackend) Stop(name, actor string) error    { return b.act("stop " + name) }
func (b *fakeBackend) Restart(name, actor string) error { return b.act("restart " + name) }
func (b *fakeBackend) Report(name string) (*engine.Report, error) {
	return nil, serve.ErrNotFound
}
func (b *fakeBackend) Validate(name string, yaml []byte) (engine.Diags, error) { return nil, nil }
func (b *fakeBackend) Tap(name, node, port string) (serve.TapStream, error) {
	if node != "src" {
		return nil, serve.ErrNoNode
	}
	return &fakeTap{ch: b.tapped}, nil
}
func (b *fakeBackend) Collector() prometheus.Collector {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "fake_total", Help: "x"})
}

type fakeTap struct{ ch chan []byte }

func (t *fakeTap) Events() <-chan []byte { return t.ch }
func (t *fakeTap) Dropped() int64        { return 7 }
func (t *fakeTap) Close()                {}

func newServer(t *testing.T, b *fakeBackend) string {
	t.Helper()
	srv := httptest.NewServer(api.New(b, api.Config{Token: "0123456789abcdef0123"}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientAgainstAPI(t *testing.T) {
	b := &fakeBackend{tapped: make(chan []byte, 3)}
	url := newServer(t, b)
	ctx := context.Background()
	c, err := New(Options{Server: url, Token: "0123456789abcdef0123"})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := c.List(ctx)
	if err != nil || len(gs) != 1 || gs[0].Name != "g" || gs[0].InPerSec != 10 {
		t.Fatalf("List: %+v, %v", gs, err)
	}
	d, err := c.Get(ctx, "g")
	if err != nil || d.YAML != "version: 2\n" || len(d.Nodes) != 1 || d.Nodes[0].Produced != 5 {
		t.Fatalf("Get: %+v, %v", d, err)
	}
	if _, err := c.Get(ctx, "nope"); !IsKind(err, "not_found") {
		t.Errorf("Get(nope): %v, want not_found", err)
	}
	a, err := c.Apply(ctx, "g2", []byte("version: 2\n"), false)
	if err != nil || !a.Result.Created {
		t.Fatalf("Apply: %+v, %v", a, err)
	}
	a, err = c.Apply(ctx, "g2", []byte("version: 2\n# v2\n"), false)
	if err != nil || !a.Result.Reloaded || a.Result.ReloadTime != 3*time.Millisecond {
		t.Fatalf("re-Apply: %+v, %v", a, err)
	}
	_, err = c.Apply(ctx, "g3", []byte("bad"), false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Kind != "invalid_graph" || len(ae.Errors) != 1 {
		t.Fatalf("invalid Apply: %#v", err)
	}
	if want := "g3.yaml:3: node \"x\": plugin not registered"; !strings.Contains(err.Error(), "invalid_graph: ") || !strings.Contains(err.Error(), "\n  "+want) {
		t.Errorf("error text %q lacks the kind and %q on its own line", err, want)
	}
	for _, act := range []string{"start", "stop", "restart"} {
		if _, err := c.Action(ctx, "g", act); err != nil {
			t.Errorf("%s: %v", act, err)
		}
	}
	if err := c.Delete(ctx, "g"); err != nil {
		t.Error(err)
	}
	if got := strings.Join(b.actions, ","); got != "start g,stop g,restart g,delete g" {
		t.Errorf("backend saw %q", got)
	}

	// Tap: two packets then the limit.
	b.tapped <- []byte(`{"seq":1}`)
	b.tapped <- []byte(`{"seq":2}`)
	var got []string
	reason, err := c.Tap(ctx, "g", "src", "", 2, TapHandler{Packet: func(l []byte) error { got = append(got, string(l)); return nil }})
	if err != nil || reason != "limit" || strings.Join(got, " ") != `{"seq":1} {"seq":2}` {
		t.Errorf("Tap: %q %v %v", reason, got, err)
	}
	if _, err := c.Tap(ctx, "g", "nope", "", 1, TapHandler{}); !IsKind(err, "not_found") {
		t.Errorf("tap of a missing node: %v", err)
	}
}

func TestClientAuth(t *testing.T) {
	url := newServer(t, &fakeBackend{})
	for _, tok := range []string{"", "wrong-token-wrong-token"} {
		c, err := New(Options{Server: url, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.List(context.Background())
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 401 || ae.Kind != "unauthorized" {
			t.Errorf("token %q: %v, want 401 unauthorized", tok, err)
		}
	}
}

func TestNewAndToken(t *testing.T) {
	for _, s := range []string{"ftp://x", "localhost:18700", "http://u:p@127.0.0.1:1"} {
		if _, err := New(Options{Server: s}); err == nil {
			t.Errorf("New(%q) accepted", s)
		}
	}
	c, err := New(Options{})
	if err != nil || c.Server() != DefaultServer {
		t.Errorf("default server: %v %v", c, err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	os.WriteFile(p, []byte("  abc  \nrest\n"), 0o600)
	if tok, err := ReadToken(p); err != nil || tok != "abc" {
		t.Errorf("ReadToken: %q %v", tok, err)
	}
	os.WriteFile(p, []byte("\n"), 0o600)
	if _, err := ReadToken(p); err == nil {
		t.Error("an empty token file was accepted")
	}
}

func TestDecodeErrorOtherBodies(t *testing.T) {
	e := decodeError(502, []byte("<html>bad gateway</html>")).(*APIError)
	if e.Kind != "http_502" || e.Message != "<html>bad gateway</html>" {
		t.Errorf("%+v", e)
	}
	e = decodeError(404, []byte(`{"detail":"unknown preset"}`)).(*APIError)
	if e.Message != "unknown preset" {
		t.Errorf("%+v", e)
	}
}

func (b *fakeBackend) Queues() []serve.QueueRef { return nil }
