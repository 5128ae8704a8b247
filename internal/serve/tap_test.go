package serve

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// fast emits as fast as the sink takes packets.
var fast = strings.Replace(ticker, "interval_sec: 0.005", "interval_sec: 0", 1)

func TestTapDeliversAndCountsDrops(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config())
	if _, err := s.Apply("g", []byte(fast), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	tap, err := s.Tap("g", "src", "")
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	for i := 0; i < 5; i++ {
		line := <-tap.Events()
		if err := json.Unmarshal(line, &p); err != nil || p["kind"] != "tick" || p["packet_id"] == "" {
			t.Fatalf("line %s: %v", line, err)
		}
	}
	// Nobody reads now: the buffer fills, the rest is dropped and counted,
	// and the graph goes on at its own pace.
	poll.Until(t, wait, "drops counted", func() bool { return tap.Dropped() > 1000 })
	dropped := tap.Dropped()
	r2, _ := s.Report("g")
	if got, min := metric(r2, "node.src.produced"), dropped+5+int64(len(tap.Events())); got < min {
		t.Errorf("source emitted %d, fewer than the tap read, buffered and dropped (%d)", got, min)
	}
	poll.Until(t, wait, "the graph going on meanwhile", func() bool {
		r3, _ := s.Report("g")
		return metric(r3, "node.out.consumed") > metric(r2, "node.out.consumed")+1000
	})
	sink, err := s.Tap("g", "out", "") // a sink: what it consumes
	if err != nil {
		t.Fatal(err)
	}
	if line := <-sink.Events(); !strings.Contains(string(line), `"kind": "tick"`) {
		t.Errorf("sink tap line %s", line)
	}
	if _, err := s.Tap("g", "nope", ""); !errors.Is(err, ErrNoNode) {
		t.Errorf("unknown node: %v", err)
	}
	// A reload ends the streams.
	if _, err := s.Apply("g", []byte(ticker), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ts := range []TapStream{tap, sink} {
		for range ts.Events() { // drain what was buffered; then closed
		}
		if r := ts.(*tapStream).EndReason(); r != "graph reloaded" {
			t.Errorf("end reason %q", r)
		}
		ts.Close() // after the end: harmless
	}
	if err := s.Stop("g", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tap("g", "src", ""); !errors.Is(err, ErrNotRunning) {
		t.Errorf("tap on a stopped graph: %v", err)
	}
	s.mu.Lock()
	open := s.taps
	s.mu.Unlock()
	if open != 0 {
		t.Errorf("%d taps counted open after every stream ended", open)
	}
}

func TestTooManyTaps(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config(func(c *Config) { c.MaxTaps = 8 }))
	if _, err := s.Apply("g", []byte(fast), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	var open []TapStream
	refused := 0
	for i := 0; i < 1000; i++ {
		ts, err := s.Tap("g", "out", "")
		switch {
		case err == nil:
			open = append(open, ts)
		case errors.Is(err, ErrTooMany):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if len(open) != 8 || refused != 992 {
		t.Fatalf("%d opened, %d refused", len(open), refused)
	}
	st := status(t, s, "g")
	r1, _ := s.Report("g")
	poll.Until(t, wait, "the graph still producing", func() bool {
		r2, _ := s.Report("g")
		return metric(r2, "node.out.consumed") > metric(r1, "node.out.consumed")+1000
	})
	if now := status(t, s, "g"); now.State != StateRunning || now.Generation != st.Generation || now.Restarts != 0 {
		t.Errorf("graph disturbed: %+v", now)
	}
	open[0].Close()
	again, err := s.Tap("g", "out", "")
	if err != nil {
		t.Fatalf("after closing one: %v", err)
	}
	again.Close()
	for _, ts := range open[1:] {
		ts.Close()
	}
}

func TestCollectorLabelsGraphs(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config())
	for _, n := range []string{"a", "b"} {
		if _, err := s.Apply(n, []byte(ticker), ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply("c", []byte(ticker), ApplyOptions{Stopped: true}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[key] = v
		}
	}
	for key, want := range map[string]float64{
		"schnitzel_serve_graph_up,graph=a": 1, "schnitzel_serve_graph_up,graph=c": 0,
		"schnitzel_serve_graph_state,graph=c,state=stopped": 1, "schnitzel_serve_graph_state,graph=a,state=running": 1,
		"schnitzel_serve_graph_restarts_total,graph=b": 0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	for _, g := range []string{"a", "b"} {
		if _, ok := got["schnitzel_node_consumed_packets_total,graph="+g+",node=out,plugin=schnitzel_stream.nodes.dev:Identity"]; !ok {
			t.Errorf("no node series for graph %s", g)
		}
	}
	if _, ok := got["schnitzel_node_consumed_packets_total,graph=c,node=out,plugin=schnitzel_stream.nodes.dev:Identity"]; ok {
		t.Error("a stopped graph exports node series")
	}
}
