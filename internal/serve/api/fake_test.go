package api

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// fakeBackend is a Backend that validates with the real engine (so invalid
// YAML gives real graph.Diag values with lines) but runs nothing: a graph
// is "running" once applied, and tests push tap events with emit.
type fakeBackend struct {
	reg *plugin.Registry

	mu     sync.Mutex
	graphs map[string]*fakeGraph
	taps   []*fakeTap

	tapErr    error // returned by Tap when set
	closes    atomic.Int64
	applyErr  error // returned by Apply when set (after validation)
	upGauge   *prometheus.GaugeVec
	tapBuffer int
	// detailHook edits what Get returns (env, errors set by a real run).
	detailHook func(*serve.GraphDetail)
	queues     []serve.QueueRef
}

type fakeGraph struct {
	yaml    []byte
	state   serve.State
	since   time.Time
	nodes   []string
	ran     bool
	desired string
}

type fakeTap struct {
	graph, node, port string

	mu      sync.Mutex
	ch      chan []byte
	closed  bool
	dropped atomic.Int64
	fb      *fakeBackend
}

func (t *fakeTap) Events() <-chan []byte { return t.ch }
func (t *fakeTap) Dropped() int64        { return t.dropped.Load() }

// Close is called by the API when the stream ends, whoever ended it.
func (t *fakeTap) Close() {
	t.fb.closes.Add(1)
	t.end()
}

func (t *fakeTap) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.ch)
	}
}

// send never blocks, like the real tap: a full buffer is a drop.
func (t *fakeTap) send(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	select {
	case t.ch <- b:
	default:
		t.dropped.Add(1)
	}
}

type nodeCfg struct {
	N int `yaml:"n" doc:"a number"`
}

type fakeSrc struct{}

func (fakeSrc) Run(context.Context, plugin.Emitter) error { return nil }

type fakeSink struct{}

func (fakeSink) Process(context.Context, *packet.Packet, plugin.Emitter) error { return nil }

func newFake() *fakeBackend {
	reg := plugin.NewRegistry()
	plugin.Register(reg, plugin.Spec[nodeCfg]{Name: "schnitzel_stream.test:Src", Role: plugin.RoleSource, Summary: "test source",
		New: func(nodeCfg, plugin.Env) (any, error) { return fakeSrc{}, nil }})
	plugin.Register(reg, plugin.Spec[nodeCfg]{Name: "schnitzel_stream.test:Sink", Role: plugin.RoleSink, Summary: "test sink",
		New: func(nodeCfg, plugin.Env) (any, error) { return fakeSink{}, nil }})
	return &fakeBackend{reg: reg, graphs: map[string]*fakeGraph{}, tapBuffer: 4,
		upGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "schnitzel_test_graph_up", Help: "1 while running"}, []string{"graph"})}
}

func (f *fakeBackend) opts() engine.Options {
	return engine.Options{Registry: f.reg, LookupEnv: func(string) (string, bool) { return "", false },
		Getenv: func(string) string { return "" }}
}

func (f *fakeBackend) load(name string, yaml []byte) (*engine.Plan, engine.Diags, error) {
	return engine.Load(name+".yaml", yaml, f.opts())
}

func (f *fakeBackend) statusLocked(name string, g *fakeGraph) serve.GraphStatus {
	return serve.GraphStatus{Name: name, State: g.state, Desired: g.desired, Since: g.since, File: "/graphs/" + name + ".yaml", Origin: "api"}
}

func (f *fakeBackend) List() []serve.GraphStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []serve.GraphStatus
	for n, g := range f.graphs {
		out = append(out, f.statusLocked(n, g))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fakeBackend) Get(name string) (*serve.GraphDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.graphs[name]
	if !ok {
		return nil, fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	d := &serve.GraphDetail{GraphStatus: f.statusLocked(name, g), YAML: string(g.yaml)}
	for _, id := range g.nodes {
		d.Nodes = append(d.Nodes, serve.NodeStatus{ID: id})
	}
	if g.ran {
		d.Report = f.reportLocked(name)
	}
	if f.detailHook != nil {
		f.detailHook(d)
	}
	return d, nil
}

func (f *fakeBackend) reportLocked(name string) *engine.Report {
	return &engine.Report{TS: "2026-01-01T00:00:00+00:00", Status: "ok", Engine: "inproc", GraphVersion: 2, Graph: name + ".yaml",
		Metrics: packet.MapOf("packets.source_emitted_total", int64(3))}
}

func (f *fakeBackend) Apply(name string, yaml []byte, o serve.ApplyOptions) (serve.ApplyResult, error) {
	if !ValidName(name) {
		return serve.ApplyResult{}, serve.ErrBadName
	}
	plan, diags, err := f.load(name, yaml)
	if err != nil {
		return serve.ApplyResult{}, err
	}
	if f.applyErr != nil {
		return serve.ApplyResult{}, f.applyErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g, exists := f.graphs[name]
	res := serve.ApplyResult{Diags: diags.Warnings()}
	switch {
	case !exists:
		res.Created = true
	case bytes.Equal(g.yaml, yaml):
		res.Unchanged = true
	default:
		res.Reloaded = true
		f.endTapsLocked(name)
	}
	ng := &fakeGraph{yaml: yaml, state: serve.StateRunning, desired: "running", since: time.Now(), ran: true}
	if o.Stopped {
		ng.state, ng.desired, ng.ran = serve.StateStopped, "stopped", false
	}
	for _, n := range plan.Graph.Nodes {
		ng.nodes = append(ng.nodes, n.ID)
	}
	f.graphs[name] = ng
	f.upGauge.WithLabelValues(name).Set(1)
	return res, nil
}

func (f *fakeBackend) endTapsLocked(name string) {
	for _, t := range f.taps {
		if t.graph == name {
			t.end()
		}
	}
}

func (f *fakeBackend) set(name string, st serve.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.graphs[name]
	if !ok {
		return fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	if st != serve.StateRunning {
		f.endTapsLocked(name)
	} else {
		g.ran = true
	}
	g.state, g.desired, g.since = st, string(st), time.Now()
	return nil
}

func (f *fakeBackend) Delete(name, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.graphs[name]; !ok {
		return fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	f.endTapsLocked(name)
	delete(f.graphs, name)
	f.upGauge.DeleteLabelValues(name)
	return nil
}

func (f *fakeBackend) Start(name, _ string) error { return f.set(name, serve.StateRunning) }
func (f *fakeBackend) Stop(name, _ string) error  { return f.set(name, serve.StateStopped) }
func (f *fakeBackend) Restart(name, _ string) error {
	if err := f.set(name, serve.StateStopped); err != nil {
		return err
	}
	return f.set(name, serve.StateRunning)
}

func (f *fakeBackend) Report(name string) (*engine.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.graphs[name]
	if !ok {
		return nil, fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	if !g.ran {
		return nil, nil
	}
	return f.reportLocked(name), nil
}

func (f *fakeBackend) Validate(name string, yaml []byte) (engine.Diags, error) {
	if name == "" {
		name = "request"
	}
	_, diags, err := f.load(name, yaml)
	return diags, err
}

func (f *fakeBackend) Tap(name, node, port string) (serve.TapStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tapErr != nil {
		return nil, f.tapErr
	}
	g, ok := f.graphs[name]
	if !ok {
		return nil, fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	if g.state != serve.StateRunning {
		return nil, fmt.Errorf("graph %q is %s: %w", name, g.state, serve.ErrNotRunning)
	}
	found := false
	for _, id := range g.nodes {
		found = found || id == node
	}
	if !found {
		return nil, fmt.Errorf("graph %q node %q: %w", name, node, serve.ErrNoNode)
	}
	t := &fakeTap{graph: name, node: node, port: port, ch: make(chan []byte, f.tapBuffer), fb: f}
	f.taps = append(f.taps, t)
	return t, nil
}

// emit offers one packet line to every open tap of graph/node.
func (f *fakeBackend) emit(graph, node string, line []byte) {
	f.mu.Lock()
	taps := append([]*fakeTap(nil), f.taps...)
	f.mu.Unlock()
	for _, t := range taps {
		if t.graph == graph && t.node == node {
			t.send(line)
		}
	}
}

// open counts the taps not yet ended.
func (f *fakeBackend) open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.taps {
		t.mu.Lock()
		if !t.closed {
			n++
		}
		t.mu.Unlock()
	}
	return n
}

func (f *fakeBackend) Collector() prometheus.Collector { return f.upGauge }

var _ Backend = (*fakeBackend)(nil)

func serveOpts() serve.ApplyOptions { return serve.ApplyOptions{Origin: "api", Actor: "test"} }

func (f *fakeBackend) Queues() []serve.QueueRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]serve.QueueRef(nil), f.queues...)
}
