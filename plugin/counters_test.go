package plugin

import (
	"context"

	"github.com/schnitzel-stream/schnitzel/packet"
	"slices"
	"strings"
	"testing"
)

type countingNode struct {
	*Counters
	seen, lost *Counter
}

func (n *countingNode) Process(_ context.Context, p *packet.Packet, out Emitter) error {
	n.seen.Add(1)
	return out.Emit(p)
}

func TestCountersFromEnv(t *testing.T) {
	r := NewRegistry()
	Register(r, Spec[struct{}]{
		Name: "schnitzel_stream.test:Counting", Role: RoleNode,
		Metrics: []MetricSpec{{Name: "seen_total", Help: "h"}, {Name: "lost_total", Help: "h", Loss: true}},
		NewProcessor: func(_ struct{}, env Env) (Processor, error) {
			cs := env.Counters()
			return &countingNode{Counters: cs, lost: cs.Get("lost_total"), seen: cs.Get("seen_total")}, nil
		},
	})
	e, _ := r.Lookup("schnitzel_stream.test:Counting")
	dec, _, _ := e.Decode(packet.NewMap(0))
	n, err := e.Build(dec, Env{NodeID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	cn := n.(*countingNode)
	cn.seen.Add(3)
	cn.lost.Add(1)
	got := n.(Metrics).Metrics()
	want := []Metric{{"seen_total", 3}, {"lost_total", 1}} // declaration order, not Get order
	if !slices.Equal(got, want) {
		t.Errorf("Metrics = %v, want %v", got, want)
	}
	// Two builds get two sets.
	n2, _ := e.Build(dec, Env{NodeID: "d"})
	if v := n2.(Metrics).Metrics()[0].Value; v != 0 {
		t.Errorf("a second node starts at %d", v)
	}
}

func TestCountersUndeclaredPanics(t *testing.T) {
	r := NewRegistry()
	Register(r, Spec[struct{}]{
		Name: "schnitzel_stream.test:Typo", Role: RoleNode,
		Metrics: []MetricSpec{{Name: "seen_total", Help: "h"}},
		NewProcessor: func(_ struct{}, env Env) (Processor, error) {
			cs := env.Counters()
			return &countingNode{Counters: cs, seen: cs.Get("sen_total")}, nil
		},
	})
	e, _ := r.Lookup("schnitzel_stream.test:Typo")
	dec, _, _ := e.Decode(packet.NewMap(0))
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, `metric "sen_total" is not declared`) {
			t.Errorf("recovered %v", r)
		}
	}()
	_, _ = e.Build(dec, Env{})
	t.Error("Build did not panic")
}

func TestCountersRead(t *testing.T) {
	cs := newCounters([]MetricSpec{{Name: "a_total"}, {Name: "depth", Gauge: true}})
	cs.Get("a_total").Add(1)
	depth := int64(7)
	cs.Read("depth", func() int64 { return depth })
	if got := cs.Metrics(); !slices.Equal(got, []Metric{{"a_total", 1}, {"depth", 7}}) {
		t.Errorf("Metrics = %v", got)
	}
	depth = 3
	if got := cs.Metrics()[1].Value; got != 3 {
		t.Errorf("depth read as %d after it changed to 3", got)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("Read of an undeclared name did not panic")
		}
	}()
	cs.Read("dept", func() int64 { return 0 })
}

func TestCountersOutsideRegistry(t *testing.T) {
	cs := Env{}.Counters()
	cs.Get("a_total").Add(2)
	cs.Get("b").Store(5)
	if got := cs.Metrics(); !slices.Equal(got, []Metric{{"a_total", 2}, {"b", 5}}) {
		t.Errorf("Metrics = %v", got)
	}
}
