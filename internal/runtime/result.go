package runtime

import (
	"errors"
	"time"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// NodeStats is one node's counters at a moment.
type NodeStats struct {
	ID           string
	Plugin       string
	Kind         string
	IsSource     bool
	IsSink       bool
	Consumed     int64
	Produced     int64
	InboxDropped int64
	Errors       int64
	Abandoned    int64 // packets given up when a stop outlived StopTimeout (never nacked)
	InboxDepth   int
	InboxBytes   int64 // bytes of frames (packet.Sized) waiting; 0 in graphs without them
	Batches      int64
	BusyNs       int64
	MaxNs        int64
	Failed       bool
	Extension    []plugin.Metric
	// Lost sums the Extension metrics the node's spec declares as Loss:
	// the spec, not the node's values, says what counts as a loss.
	Lost int64
}

// Snapshot is every node's counters, in declaration order.
type Snapshot struct {
	Nodes         []NodeStats
	SourceEmitted int64
}

// Result is what a run ended with.
type Result struct {
	Snapshot
	Err     *NodeError   // first failure, nil when none
	Errors  []*NodeError // every failure, close errors included
	Stopped bool         // ended by Stop (signal) rather than by running out of input
	Aborted bool
	// StopExpired: the drain after Stop outlived StopTimeout, so the node
	// context was cancelled and Abandoned packets were given up.
	StopExpired bool
	Abandoned   int64    // total over nodes
	Stuck       []string // nodes that had not returned StopGrace after their ctx was cancelled
	Started     time.Time
	Duration    time.Duration
	Degraded    bool // something was dropped, failed per packet, or reported as lost
}

// Snapshot reads the counters; safe while running.
func (x *Executor) Snapshot() Snapshot {
	s := Snapshot{SourceEmitted: x.srcEmit.Load()}
	for _, n := range x.nodes {
		ns := NodeStats{
			ID: n.pn.ID, Plugin: n.pn.Plugin, Kind: n.pn.Kind,
			IsSource: n.source, IsSink: n.sink,
			Consumed: n.consumed.Load(), Produced: n.produced.Load(), Errors: n.errors.Load(),
			Abandoned: n.abandoned.Load(), Batches: n.batches.Load(), BusyNs: n.busyNs.Load(), MaxNs: n.maxNs.Load(), Failed: n.failed.Load(),
		}
		if n.in != nil {
			ns.InboxDropped = n.in.dropped.Load()
			ns.InboxDepth, ns.InboxBytes = n.in.depth()
		}
		if m, ok := n.inst.(plugin.Metrics); ok {
			ns.Extension = m.Metrics()
			for _, v := range ns.Extension {
				if ms, ok := n.pn.Entry.Metric(v.Name); ok && ms.Loss {
					ns.Lost += v.Value
				}
			}
		}
		s.Nodes = append(s.Nodes, ns)
	}
	return s
}

func (x *Executor) result(closeErr error) *Result {
	r := &Result{Snapshot: x.Snapshot(), Stopped: x.stopped.Load(), Aborted: x.aborted.Load(), Started: x.started, Duration: x.ended.Sub(x.started),
		StopExpired: x.expired.Load(), Stuck: append([]string(nil), x.stuck...)}
	if len(r.Stuck) > 0 {
		r.Degraded = true
	}
	x.mu.Lock()
	r.Err = x.firstErr
	r.Errors = append(r.Errors, x.errs...)
	x.mu.Unlock()
	for _, e := range unjoin(closeErr) {
		var ne *NodeError
		if errors.As(e, &ne) {
			r.Errors = append(r.Errors, ne)
			if r.Err == nil {
				r.Err = ne
			}
		}
	}
	for _, n := range r.Nodes {
		r.Abandoned += n.Abandoned
		if n.InboxDropped > 0 || n.Errors > 0 || n.Abandoned > 0 || n.Lost > 0 {
			r.Degraded = true
		}
	}
	return r
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
