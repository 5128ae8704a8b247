package plugintest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// recorder is a testing.TB that keeps what the suite reports instead of
// failing the test, so the suite itself can be checked.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

type cfg struct {
	Mode string `yaml:"mode" enum:"a,b" doc:"How."`
}

// node is configurable into each way of breaking the contract.
type node struct {
	release   chan struct{} // ends what leaks and what ignores its ctx
	quit      chan struct{}
	closeOnce bool // false: the second Close closes quit again (panics)
	metrics   []string
	deaf      bool // Run ignores its ctx
	eager     bool // Run emits before it looks at its ctx
}

func (n *node) Start(context.Context) error {
	n.quit = make(chan struct{})
	return nil
}

func (n *node) Close(context.Context) error {
	if n.closeOnce {
		if n.quit != nil {
			close(n.quit)
			n.quit = nil
		}
		return nil
	}
	close(n.quit) // nil before Start, closed the second time: panics, as a careless node does
	return nil
}

func (n *node) Run(ctx context.Context, out plugin.Emitter) error {
	if n.deaf {
		<-n.release
		return nil
	}
	if n.eager {
		if err := out.Emit(packet.New("raw", "x", nil, "", nil)); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func (n *node) Process(context.Context, *packet.Packet, plugin.Emitter) error { return nil }

func (n *node) Metrics() []plugin.Metric {
	var out []plugin.Metric
	for _, m := range n.metrics {
		out = append(out, plugin.Metric{Name: m})
	}
	return out
}

type leaky struct{ *node }

func (l leaky) Start(ctx context.Context) error {
	go func() { <-l.release }() // outlives Close
	return l.node.Start(ctx)
}

// stubborn flushes on Close until it is done, whatever its ctx says.
type stubborn struct{ *node }

func (s stubborn) Close(ctx context.Context) error {
	if ctx.Err() != nil {
		<-s.release // ignores the deadline
	}
	return s.node.Close(ctx)
}

type nothing struct{}

func TestConformanceCatches(t *testing.T) {
	defer func(l, s, k time.Duration) { lifeDeadline, stopDeadline, leakDeadline = l, s, k }(lifeDeadline, stopDeadline, leakDeadline)
	lifeDeadline, stopDeadline, leakDeadline = time.Second, 300*time.Millisecond, 300*time.Millisecond

	release := make(chan struct{})
	defer close(release)
	good := func() *node { return &node{release: release, closeOnce: true, metrics: []string{"seen_total"}} }
	metrics := []plugin.MetricSpec{{Name: "seen_total", Help: "Seen."}}
	cases := []struct {
		name     string
		role     plugin.Role
		defaults cfg
		metrics  []plugin.MetricSpec
		new      func() any
		want     string // "" = conforms
	}{
		{"good source", plugin.RoleSource, cfg{Mode: "a"}, metrics, func() any { return good() }, ""},
		{"good sink", plugin.RoleSink, cfg{Mode: "a"}, metrics, func() any { return good() }, ""},
		{"default outside its enum", plugin.RoleSink, cfg{Mode: "c"}, metrics, func() any { return good() }, "docs defaults"},
		{"wrong type", plugin.RoleSink, cfg{Mode: "a"}, nil, func() any { return nothing{} }, "implements neither"},
		{"undeclared metric", plugin.RoleSink, cfg{Mode: "a"}, nil, func() any { return good() }, "the spec declares []"},
		{"missing metric", plugin.RoleSink, cfg{Mode: "a"}, append(metrics, plugin.MetricSpec{Name: "lost_total", Help: "Lost."}), func() any { return good() }, "metrics before Start"},
		{"close before start panics", plugin.RoleSink, cfg{Mode: "a"}, metrics, func() any {
			n := good()
			n.closeOnce = false
			return n
		}, "close #1 (never started): panic"},
		{"second close panics", plugin.RoleSink, cfg{Mode: "a"}, metrics, func() any {
			n := good()
			n.closeOnce = false
			n.quit = make(chan struct{}) // so only the second close panics
			return n
		}, "close #2"},
		{"deaf source", plugin.RoleSource, cfg{Mode: "a"}, metrics, func() any {
			n := good()
			n.deaf = true
			return n
		}, "did not return within"},
		{"emits after cancel", plugin.RoleSource, cfg{Mode: "a"}, metrics, func() any {
			n := good()
			n.eager = true
			return n
		}, "cancelled ctx emitted 1 packets"},
		{"close ignores its deadline", plugin.RoleSink, cfg{Mode: "a"}, metrics, func() any { return stubborn{node: good()} }, "close #1 with an expired ctx: did not return"},
		{"leaks a goroutine", plugin.RoleSink, cfg{Mode: "a"}, metrics, func() any { return leaky{good()} }, "goroutines outlive Close"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := plugin.NewRegistry()
			plugin.Register(r, plugin.Spec[cfg]{Name: "test.conf:Node", Role: c.role, Summary: "A test node.", Defaults: c.defaults, Metrics: c.metrics,
				New: func(cfg, plugin.Env) (any, error) { return c.new(), nil }})
			e, _ := r.Lookup("test.conf:Node")
			got := suite(t, e)
			if c.want == "" && got != "" || !strings.Contains(got, c.want) {
				t.Errorf("suite reported %q, want %q", got, c.want)
			}
		})
	}
}

// suite runs the checks on e and returns what they reported.
func suite(t *testing.T, e *plugin.Entry) string {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conform(rec, e, Fixture{})
	}()
	<-done
	return strings.Join(rec.msgs, "\n")
}

func TestConformanceWantsDocs(t *testing.T) {
	type bare struct {
		Key string `yaml:"key"`
	}
	r := plugin.NewRegistry()
	plugin.Register(r, plugin.Spec[bare]{Name: "test.conf:Bare", Role: plugin.RoleSink,
		NewProcessor: func(bare, plugin.Env) (plugin.Processor, error) { return &node{closeOnce: true}, nil }})
	e, _ := r.Lookup("test.conf:Bare")
	got := suite(t, e)
	for _, want := range []string{"spec has no Summary", "config key key has no doc tag"} {
		if !strings.Contains(got, want) {
			t.Errorf("suite reported %q, want %q", got, want)
		}
	}
}
