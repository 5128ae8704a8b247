// Package report builds the run report (upstream's --report-json contract,
// plus status that tells the truth, duration and errors) and serves the same
// counters to Prometheus.
package report

import (
	"math"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// Statuses.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded"
	StatusError    = "error"
)

// Report is a finished run's report.
type Report struct {
	TS           string
	Status       string
	Engine       string // "inproc" (v2) or "job" (v1)
	GraphVersion int
	Graph        string
	Metrics      *packet.Map // ordered name -> int64
	Duration     time.Duration
	Stopped      bool // ended by a signal
	// StopExpired: the drain after the signal outlived --stop-timeout;
	// Abandoned packets were given up then (never nacked), Stuck nodes
	// had not returned even after their ctx was cancelled.
	StopExpired bool
	Abandoned   int64
	Stuck       []string
	Error       *ErrorInfo
	Errors      []ErrorInfo
	Warnings    int
}

// ErrorInfo names where a run failed.
type ErrorInfo struct {
	Node    string
	Plugin  string
	Phase   string
	Message string
}

// FromResult builds the report of a v2 run.
func FromResult(graphPath string, r *runtime.Result) *Report {
	rep := &Report{TS: packet.Now(), Engine: "inproc", GraphVersion: 2, Graph: graphPath, Duration: r.Duration, Stopped: r.Stopped,
		StopExpired: r.StopExpired, Abandoned: r.Abandoned, Stuck: r.Stuck}
	rep.Metrics = Metrics(r.Snapshot)
	rep.Status = StatusOK
	if r.Degraded {
		rep.Status = StatusDegraded
	}
	for _, e := range r.Errors {
		rep.Errors = append(rep.Errors, ErrorInfo{Node: e.NodeID, Plugin: e.Plugin, Phase: e.Phase, Message: e.Err.Error()})
	}
	if r.Err != nil {
		rep.Status = StatusError
		rep.Error = &ErrorInfo{Node: r.Err.NodeID, Plugin: r.Err.Plugin, Phase: r.Err.Phase, Message: r.Err.Err.Error()}
	}
	return rep
}

// FromSnapshot is the live report of a graph still running: its counters
// now, the time since it started, and status ok or degraded (a failure
// ends the run, so a running graph's report has none).
func FromSnapshot(graphPath string, s runtime.Snapshot, started time.Time) *Report {
	rep := &Report{TS: packet.Now(), Engine: "inproc", GraphVersion: 2, Graph: graphPath, Status: StatusOK, Metrics: Metrics(s)}
	if !started.IsZero() {
		rep.Duration = time.Since(started)
	}
	for _, n := range s.Nodes {
		rep.Abandoned += n.Abandoned
		// Lost: the extension metrics the node's spec declares as Loss.
		if n.InboxDropped > 0 || n.Errors > 0 || n.Abandoned > 0 || n.Lost > 0 {
			rep.Status = StatusDegraded
		}
	}
	return rep
}

// Metrics flattens a snapshot with upstream's names and order: totals,
// then per node (declaration order) the baseline keys, then each node's
// extension keys, then our additions.
func Metrics(s runtime.Snapshot) *packet.Map {
	var consumed, produced, dropped, failed, abandoned int64
	for _, n := range s.Nodes {
		consumed += n.Consumed
		produced += n.Produced
		dropped += n.InboxDropped
		failed += n.Errors
		abandoned += n.Abandoned
	}
	m := packet.NewMap(8 + 8*len(s.Nodes))
	m.Set("packets.consumed_total", consumed)
	m.Set("packets.produced_total", produced)
	m.Set("packets.source_emitted_total", s.SourceEmitted)
	m.Set("packets.dropped_total", dropped)
	m.Set("packets.failed_total", failed)
	m.Set("packets.abandoned_total", abandoned)
	for _, n := range s.Nodes {
		p := "node." + n.ID + "."
		m.Set(p+"consumed", n.Consumed)
		m.Set(p+"produced", n.Produced)
		m.Set(p+"is_source", b2i(n.IsSource))
		m.Set(p+"is_sink", b2i(n.IsSink))
		m.Set(p+"inbox_dropped_total", n.InboxDropped)
	}
	for _, n := range s.Nodes {
		p := "node." + n.ID + "."
		for _, e := range n.Extension {
			if e.Name == "" || plugin.ReservedMetric(e.Name) {
				continue
			}
			m.Set(p+e.Name, e.Value)
		}
	}
	for _, n := range s.Nodes {
		p := "node." + n.ID + "."
		m.Set(p+"errors_total", n.Errors)
		avg := int64(0)
		if n.Consumed > 0 {
			avg = int64(math.Round(float64(n.BusyNs) / float64(n.Consumed) / 1e3))
		}
		m.Set(p+"process_avg_us", avg)
		m.Set(p+"process_max_us", n.MaxNs/1e3)
		m.Set(p+"abandoned_total", n.Abandoned)
	}
	return m
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// JSON renders the report as one line, the way upstream's CLI prints it
// (compact separators, ASCII-escaped), with our keys after upstream's.
func (r *Report) JSON() []byte {
	m := packet.NewMap(12)
	m.Set("ts", r.TS)
	m.Set("status", r.Status)
	m.Set("engine", r.Engine)
	m.Set("graph_version", int64(r.GraphVersion))
	m.Set("graph", r.Graph)
	m.Set("metrics", r.Metrics)
	m.Set("duration_sec", math.Round(r.Duration.Seconds()*1e6)/1e6)
	m.Set("stopped_by_signal", r.Stopped)
	m.Set("abandoned_total", r.Abandoned)
	if r.StopExpired {
		m.Set("stop_timeout_expired", true)
	}
	if len(r.Stuck) > 0 {
		list := make([]any, len(r.Stuck))
		for i, id := range r.Stuck {
			list[i] = id
		}
		m.Set("stuck_nodes", list)
	}
	if r.Error != nil {
		m.Set("error", errMap(*r.Error))
	}
	if len(r.Errors) > 0 {
		list := make([]any, len(r.Errors))
		for i, e := range r.Errors {
			list[i] = errMap(e)
		}
		m.Set("errors", list)
	}
	return packet.AppendJSON(nil, m, packet.Compact)
}

// errMap renders one error; its message is masked (redact.Text) because
// node errors quote URLs and the report outlives the run.
func errMap(e ErrorInfo) *packet.Map {
	return packet.MapOf("node", e.Node, "plugin", e.Plugin, "phase", e.Phase, "message", redact.Text(e.Message))
}

// Summary is the text line printed when --report-json is not given
// (upstream's format).
func (r *Report) Summary(nodes, edges int) string {
	p, _ := r.Metrics.Get("packets.produced_total")
	s := "v2 graph executed (in-proc): nodes=" + itoa(int64(nodes)) + " edges=" + itoa(int64(edges)) + " packets=" + itoa(p.(int64))
	if r.Abandoned > 0 {
		// Only after a stop that outlived --stop-timeout.
		s += " abandoned=" + itoa(r.Abandoned) + " (in flight when --stop-timeout expired; not nacked)"
	}
	if len(r.Stuck) > 0 {
		s += " stuck=" + strings.Join(r.Stuck, ",")
	}
	return s
}

func itoa(i int64) string { return packet.PyStr(i) }
