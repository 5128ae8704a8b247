package serve

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/report"
)

var allStates = []State{StateStarting, StateRunning, StateStopped, StateFailed, StateBackoff}

// collector exports every running graph's node metrics (report's series
// with a "graph" label) and each graph's supervision state.
type collector struct {
	s                   *Supervisor
	nodes               *report.Collector
	up, state, restarts *prometheus.Desc
}

// Collector exports every graph's node metrics with a "graph" label, plus
// schnitzel_serve_graph_up, _state and _restarts_total.
func (s *Supervisor) Collector() prometheus.Collector {
	c := &collector{s: s,
		up:       prometheus.NewDesc("schnitzel_serve_graph_up", "1 while the graph is running, else 0.", []string{"graph"}, nil),
		state:    prometheus.NewDesc("schnitzel_serve_graph_state", "1 for the graph's current state (starting, running, stopped, failed, backoff).", []string{"graph", "state"}, nil),
		restarts: prometheus.NewDesc("schnitzel_serve_graph_restarts_total", "Automatic restarts after failures since the graph was last applied or started.", []string{"graph"}, nil),
	}
	c.nodes = report.NewGraphsCollector(s.runningSnapshots)
	return c
}

func (s *Supervisor) runningSnapshots() []report.GraphSnapshot {
	type item struct {
		name string
		x    *engine.Executor
	}
	var items []item
	s.mu.Lock()
	for _, name := range sortedKeys(s.graphs) {
		if r := s.graphs[name].cur; r != nil && r.x != nil {
			items = append(items, item{name, r.x})
		}
	}
	s.mu.Unlock()
	out := make([]report.GraphSnapshot, 0, len(items))
	for _, it := range items {
		out = append(out, report.GraphSnapshot{Graph: it.name, Snapshot: it.x.Snapshot()})
	}
	return out
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.nodes.Describe(ch)
	ch <- c.up
	ch <- c.state
	ch <- c.restarts
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.nodes.Collect(ch)
	for _, st := range c.s.List() {
		up := 0.0
		if st.State == StateRunning {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.Name)
		for _, s := range allStates {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, st.Name, string(s))
		}
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(st.Restarts), st.Name)
	}
}
