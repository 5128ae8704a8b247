package report

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func TestFromSnapshotIsLive(t *testing.T) {
	cases := []struct {
		name string
		node runtime.NodeStats
		want string
	}{
		{"clean", runtime.NodeStats{ID: "out", IsSink: true, Consumed: 7}, StatusOK},
		{"dropped", runtime.NodeStats{ID: "out", IsSink: true, Consumed: 7, InboxDropped: 1}, StatusDegraded},
		{"lost", runtime.NodeStats{ID: "out", IsSink: true, Extension: []plugin.Metric{{Name: "dead_total", Value: 2}}, Lost: 2}, StatusDegraded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := runtime.Snapshot{Nodes: []runtime.NodeStats{{ID: "src", IsSource: true, Produced: 7}, tc.node}, SourceEmitted: 7}
			rep := FromSnapshot("g", s, time.Now().Add(-time.Second))
			if rep.Status != tc.want || rep.Duration < time.Second || rep.Graph != "g" || rep.Error != nil {
				t.Fatalf("status %q duration %v graph %q", rep.Status, rep.Duration, rep.Graph)
			}
			if v, _ := rep.Metrics.Get("packets.source_emitted_total"); v != int64(7) {
				t.Errorf("source_emitted_total %v", v)
			}
		})
	}
}

// TestGraphsCollectorLabelsEveryGraph: two graphs with the same node ids
// gather without a clash on a pedantic registry (consistent descriptors),
// each series labelled with its graph.
func TestGraphsCollectorLabelsEveryGraph(t *testing.T) {
	snap := func(k int64) runtime.Snapshot {
		return runtime.Snapshot{Nodes: []runtime.NodeStats{{ID: "src", Plugin: "p", IsSource: true, Produced: k,
			Extension: []plugin.Metric{{Name: "emitted_total", Value: k}}}}, SourceEmitted: k}
	}
	c := NewGraphsCollector(func() []GraphSnapshot { return []GraphSnapshot{{"a", snap(1)}, {"b", snap(2)}} })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "schnitzel_node_produced_packets_total" && mf.GetName() != "schnitzel_source_emitted_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "graph" {
					got[mf.GetName()+"/"+l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"schnitzel_node_produced_packets_total/a": 1, "schnitzel_node_produced_packets_total/b": 2,
		"schnitzel_source_emitted_packets_total/a": 1, "schnitzel_source_emitted_packets_total/b": 2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
