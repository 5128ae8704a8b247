package runtime

import (
	"fmt"
	"slices"
	"sync"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// tap is one observer of a node's packets (Executor.Tap).
type tap struct {
	port string // "" = every port
	fn   func(*packet.Packet)
}

// taps is an immutable list, swapped whole (copy on write), so that the
// hot path reads it with one atomic load and no lock.
type taps []*tap

func (ts taps) call(port string, p *packet.Packet) {
	for _, t := range ts {
		if t.port == "" || t.port == port {
			t.fn(p)
		}
	}
}

// tapMu serialises changes to the tap lists of every executor; changes are
// rare (a client opens or closes a stream), emits never take it.
var tapMu sync.Mutex

// Tap calls fn for each packet node nodeID emits on port ("" = every
// port); for a node without out-edges (a sink), for each packet it
// consumes. fn runs on the node's goroutine, in the hot path: it must
// return at once and never block (hand the packet off without waiting,
// or drop it). The packet is the graph's own: fn must not change or keep
// it. remove stops further calls (a call already running may finish).
//
// Without taps a node pays one atomic pointer load per emit (per batch
// for a sink).
func (x *Executor) Tap(nodeID, port string, fn func(*packet.Packet)) (remove func(), err error) {
	n := x.byID[nodeID]
	if n == nil {
		return nil, fmt.Errorf("no node %q in this graph", nodeID)
	}
	if fn == nil {
		return nil, fmt.Errorf("tap on node %q: nil func", nodeID)
	}
	t := &tap{port: port, fn: fn}
	tapMu.Lock()
	var next taps
	if cur := n.taps.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, t)
	n.taps.Store(&next)
	tapMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			tapMu.Lock()
			defer tapMu.Unlock()
			cur := n.taps.Load()
			if cur == nil {
				return
			}
			next := slices.DeleteFunc(slices.Clone(*cur), func(o *tap) bool { return o == t })
			if len(next) == 0 {
				n.taps.Store(nil)
				return
			}
			n.taps.Store(&next)
		})
	}, nil
}
