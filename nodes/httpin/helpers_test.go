package httpin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// collector is a test sink that keeps what reaches it; with a gate it
// holds every packet until the gate is opened (a slow sink).
type collector struct {
	mu   sync.Mutex
	pkts []*packet.Packet
	gate chan struct{} // nil: never blocks
}

func (c *collector) Process(ctx context.Context, p *packet.Packet, _ plugin.Emitter) error {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	c.pkts = append(c.pkts, p)
	c.mu.Unlock()
	return nil
}

func (c *collector) got() []*packet.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*packet.Packet(nil), c.pkts...)
}

// gateNode forwards each packet once its gate is open.
type gateNode struct{ gate chan struct{} }

func (g *gateNode) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return out.Emit(p)
}

type noConfig struct{}

// registry holds the real nodes a test graph uses (this source, the
// SQLite queue sink, PrintSink) and the test's collector and gate.
func registry(c *collector, gate chan struct{}) *plugin.Registry {
	r := plugin.NewRegistry()
	Register(r)
	durable.Register(r)
	dev.Register(r)
	plugin.Register(r, plugin.Spec[noConfig]{
		Name: "schnitzel_stream.test:CollectSink", Role: plugin.RoleSink, Summary: "test sink",
		NewProcessor: func(noConfig, plugin.Env) (plugin.Processor, error) { return c, nil },
	})
	plugin.Register(r, plugin.Spec[noConfig]{
		Name: "schnitzel_stream.test:GateNode", Role: plugin.RoleNode, Summary: "test gate",
		NewProcessor: func(noConfig, plugin.Env) (plugin.Processor, error) { return &gateNode{gate: gate}, nil },
	})
	return r
}

// listening catches the source's "listening" log line: the bound address
// of a listen port 0.
type listening struct {
	slog.Handler
	addr chan string
}

func (l *listening) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "http ingest listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "addr" {
				select {
				case l.addr <- a.Value.String():
				default:
				}
			}
			return true
		})
	}
	return l.Handler.Handle(ctx, r)
}

func (l *listening) WithAttrs(as []slog.Attr) slog.Handler {
	return &listening{Handler: l.Handler.WithAttrs(as), addr: l.addr}
}

func (l *listening) WithGroup(g string) slog.Handler {
	return &listening{Handler: l.Handler.WithGroup(g), addr: l.addr}
}

type graphRun struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	report *engine.Report
	err    error
	logs   *logbuf.Buffer
	x      chan *engine.Executor
}

// metric reads one of a node's own metrics while the graph runs.
func (g *graphRun) metric(node, name string) int64 {
	x := <-g.x
	g.x <- x
	for _, n := range x.Snapshot().Nodes {
		if n.ID != node {
			continue
		}
		for _, m := range n.Extension {
			if m.Name == name {
				return m.Value
			}
		}
	}
	return -1
}

// startGraph runs graph text until stop; it returns once the source
// listens.
func startGraph(t *testing.T, yaml string, reg *plugin.Registry, inboxMax int) *graphRun {
	t.Helper()
	t.Chdir(t.TempDir())
	g := &graphRun{done: make(chan struct{}), logs: &logbuf.Buffer{}, x: make(chan *engine.Executor, 1)}
	h := &listening{Handler: slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}), addr: make(chan string, 1)}
	opts := engine.Options{Registry: reg, Logger: slog.New(h), Stdout: io.Discard, InboxMax: inboxMax, StopTimeout: 2 * time.Second,
		Started: func(x *engine.Executor) error { g.x <- x; return nil }}
	plan, _, err := engine.Load("graph.yaml", []byte(yaml), opts)
	if err != nil {
		t.Fatalf("load graph: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		defer close(g.done)
		g.report, g.err = engine.Execute(ctx, plan, "graph.yaml", opts)
	}()
	select {
	case g.addr = <-h.addr:
	case <-g.done:
		t.Fatalf("graph ended before listening: %v %+v\n%s", g.err, g.report, g.logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening line in 10s:\n%s", g.logs.String())
	}
	t.Cleanup(func() { g.stop(t) })
	return g
}

// stop cancels the run and waits for its report.
func (g *graphRun) stop(t *testing.T) *engine.Report {
	t.Helper()
	g.cancel()
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("graph did not stop within 20s:\n%s", g.logs.String())
	}
	if g.err != nil {
		t.Fatalf("graph: %v", g.err)
	}
	return g.report
}

func (g *graphRun) url(path string) string { return "http://" + g.addr + path }

type reply struct {
	code int
	hdr  http.Header
	body string
}

func post(t *testing.T, url, ctype, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func metric(rep *engine.Report, name string) int64 {
	v, _ := rep.Metrics.Get(name)
	n, _ := v.(int64)
	return n
}
