package serve

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/packet"
)

// tapBuffer is how many packet lines a slow reader may be behind before
// packets are dropped (and counted).
const tapBuffer = 256

// tapStream is a TapStream: the runtime's tap hook encodes each packet and
// hands it over without ever waiting; the reader gets what fits.
type tapStream struct {
	s   *Supervisor
	r   *run
	ch  chan []byte
	enc packet.JSONEncoder

	dropped atomic.Int64
	remove  func()

	mu     sync.RWMutex // send holds it shared; end takes it to close ch
	closed bool
	reason string
	once   sync.Once
}

// Events implements TapStream.
func (t *tapStream) Events() <-chan []byte { return t.ch }

// Dropped implements TapStream.
func (t *tapStream) Dropped() int64 { return t.dropped.Load() }

// Close implements TapStream.
func (t *tapStream) Close() { t.end("closed") }

// EndReason says why Events was closed ("graph stopped", "graph
// reloaded", "closed", ...); "" while open.
func (t *tapStream) EndReason() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.reason
}

// send runs on the node's goroutine: it must not block. A full buffer is
// a drop, checked before encoding so that a stalled reader costs the
// graph almost nothing.
func (t *tapStream) send(p *packet.Packet) {
	if len(t.ch) == cap(t.ch) {
		t.dropped.Add(1)
		return
	}
	line, err := t.enc.AppendPacket(nil, p)
	if err != nil {
		t.dropped.Add(1)
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return
	}
	select {
	case t.ch <- line:
	default:
		t.dropped.Add(1)
	}
}

// end detaches the stream from the graph and closes Events, once.
func (t *tapStream) end(reason string) {
	t.once.Do(func() {
		t.mu.Lock()
		rm := t.remove
		t.closed, t.reason = true, reason
		close(t.ch)
		t.mu.Unlock()
		if rm != nil {
			rm()
		}
		t.s.mu.Lock()
		t.s.taps--
		if t.r.taps != nil {
			delete(t.r.taps, t)
		}
		t.s.mu.Unlock()
	})
}

// ErrNotRunning: a tap on a graph that has no run in progress.
var ErrNotRunning = errors.New("graph is not running")

// Tap streams the packets node emits on port ("" = every port; a sink:
// the packets it consumes) while the graph runs. At most MaxTaps streams
// are open in all (ErrTooMany).
func (s *Supervisor) Tap(name, node, port string) (TapStream, error) {
	g, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	r := g.cur
	if r == nil || r.x == nil || r.taps == nil {
		st := g.state
		s.mu.Unlock()
		return nil, fmt.Errorf("graph %q is %s: %w", name, st, ErrNotRunning)
	}
	var pn *graph.PlanNode
	for _, n := range r.plan.Nodes {
		if n.ID == node {
			pn = n
		}
	}
	if pn == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("graph %q has no node %q: %w", name, node, ErrNoNode)
	}
	if ports := pn.OutPorts(); port != "" && len(pn.Out) > 0 && len(ports) > 0 && !slices.Contains(ports, port) {
		s.mu.Unlock()
		return nil, fmt.Errorf("node %q of graph %q has no port %q (ports: %v): %w", node, name, port, ports, ErrNoNode)
	}
	if s.taps >= s.cfg.MaxTaps {
		s.mu.Unlock()
		return nil, fmt.Errorf("%d tap streams are open: %w", s.cfg.MaxTaps, ErrTooMany)
	}
	s.taps++
	t := &tapStream{s: s, r: r, ch: make(chan []byte, tapBuffer), enc: packet.NewJSONEncoder(packet.JSONOptions{EnsureASCII: true})}
	r.taps[t] = struct{}{}
	x := r.x
	s.mu.Unlock()

	remove, err := x.Tap(node, port, t.send)
	if err != nil {
		t.end("error")
		return nil, fmt.Errorf("graph %q: %v: %w", name, err, ErrNoNode)
	}
	t.mu.Lock()
	t.remove = remove
	t.mu.Unlock()
	s.mu.Lock()
	_, live := r.taps[t]
	s.mu.Unlock()
	if !live { // the run ended between the two locks: detach now
		remove()
	}
	return t, nil
}
