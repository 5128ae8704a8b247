package report

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/internal/runtime"
)

// Collector exposes running graphs' counters to Prometheus. It reads the
// same atomics as the report, at scrape time.
type Collector struct {
	snaps func() []GraphSnapshot
	multi bool // a "graph" label first on every series

	consumed, produced, dropped, errors, abandoned, depth, bytes, busy, ext, emitted *prometheus.Desc
}

// GraphSnapshot is one graph's counters, for NewGraphsCollector.
type GraphSnapshot struct {
	Graph    string
	Snapshot runtime.Snapshot
}

// NewCollector returns a collector over snap (usually Executor.Snapshot).
func NewCollector(snap func() runtime.Snapshot) *Collector {
	return newCollector(func() []GraphSnapshot { return []GraphSnapshot{{Snapshot: snap()}} }, false)
}

// NewGraphsCollector returns a collector over many graphs (schnitzel
// serve): the same series as NewCollector with a "graph" label first, so
// that the descriptors are one set whatever graphs come and go.
func NewGraphsCollector(snaps func() []GraphSnapshot) *Collector {
	return newCollector(snaps, true)
}

func newCollector(snaps func() []GraphSnapshot, multi bool) *Collector {
	var g []string
	if multi {
		g = []string{"graph"}
	}
	l := append(g, "node", "plugin")
	return &Collector{
		snaps:     snaps,
		multi:     multi,
		consumed:  prometheus.NewDesc("schnitzel_node_consumed_packets_total", "Packets a node has taken from its inbox.", l, nil),
		produced:  prometheus.NewDesc("schnitzel_node_produced_packets_total", "Packets a node has emitted.", l, nil),
		dropped:   prometheus.NewDesc("schnitzel_node_inbox_dropped_packets_total", "Packets dropped by a node's inbox overflow policy.", l, nil),
		errors:    prometheus.NewDesc("schnitzel_node_failed_packets_total", "Packets whose processing failed in a node.", l, nil),
		abandoned: prometheus.NewDesc("schnitzel_node_abandoned_packets_total", "Packets given up at a node when a stop outlived --stop-timeout (not nacked).", l, nil),
		depth:     prometheus.NewDesc("schnitzel_node_inbox_depth", "Packets waiting in a node's inbox.", l, nil),
		bytes:     prometheus.NewDesc("schnitzel_node_inbox_bytes", "Bytes of decoded frames waiting in a node's inbox (graphs that carry frames).", l, nil),
		busy:      prometheus.NewDesc("schnitzel_node_busy_seconds_total", "Time a node spent processing.", l, nil),
		// One help and an untyped value for every name: a Prometheus
		// family has one help and one type, and this series name is kept
		// for compatibility, so the specs' per-metric help stays in the docs.
		ext:     prometheus.NewDesc("schnitzel_node_metric", "A node's own counter or gauge (upstream extension metric), by name; what each name means: its node's metrics in docs/nodes.md or schnitzel plugins.", append(l[:len(l):len(l)], "name"), nil),
		emitted: prometheus.NewDesc("schnitzel_source_emitted_packets_total", "Packets emitted by all sources.", g, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.consumed, c.produced, c.dropped, c.errors, c.abandoned, c.depth, c.bytes, c.busy, c.ext, c.emitted} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, gs := range c.snaps() {
		var g []string
		if c.multi {
			g = []string{gs.Graph}
		}
		s := gs.Snapshot
		ch <- prometheus.MustNewConstMetric(c.emitted, prometheus.CounterValue, float64(s.SourceEmitted), g...)
		for _, n := range s.Nodes {
			l := append(g[:len(g):len(g)], n.ID, n.Plugin)
			ch <- prometheus.MustNewConstMetric(c.consumed, prometheus.CounterValue, float64(n.Consumed), l...)
			ch <- prometheus.MustNewConstMetric(c.produced, prometheus.CounterValue, float64(n.Produced), l...)
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n.InboxDropped), l...)
			ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(n.Errors), l...)
			ch <- prometheus.MustNewConstMetric(c.abandoned, prometheus.CounterValue, float64(n.Abandoned), l...)
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n.InboxDepth), l...)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(n.InboxBytes), l...)
			ch <- prometheus.MustNewConstMetric(c.busy, prometheus.CounterValue, float64(n.BusyNs)/1e9, l...)
			for _, e := range n.Extension {
				ch <- prometheus.MustNewConstMetric(c.ext, prometheus.UntypedValue, float64(e.Value), append(l[:len(l):len(l)], e.Name)...)
			}
		}
	}
}
