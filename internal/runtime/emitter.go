package runtime

import (
	"errors"
	"strconv"
	"sync"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// emitter is a node's plugin.Emitter. Processors' packets are collected per
// out-edge and handed over a batch at a time (when a batch fills, and after
// each input batch); sources hand each packet over at once, so that a slow
// source's packet never waits in a buffer. A plugin.Flusher's emitter is
// locked (the node emits from its own goroutines) and hands over at once
// too.
type emitter struct {
	x        *Executor
	n        *node
	source   bool
	mu       *sync.Mutex // non-nil for a plugin.Flusher: Emit may come from any goroutine
	produced int64       // not yet added to n.produced (one atomic add per flush)
	// refused: destinations of emits refused after the stop expired. They
	// are counted abandoned there unless the call itself ends interrupted
	// (then its input is counted, once, at this node).
	refused []*node
}

// mark remembers where each out-edge buffer ends before a call, so that
// rollback can drop what an interrupted call emitted: its input is counted
// abandoned, its partial output is not delivered.
func (em *emitter) mark() {
	em.lock()
	defer em.unlock()
	for _, o := range em.n.out {
		o.mark = len(o.buf)
	}
}

func (em *emitter) rollback() {
	em.lock()
	defer em.unlock()
	for _, o := range em.n.out {
		if o.mark < len(o.buf) {
			clear(o.buf[o.mark:])
			o.buf = o.buf[:o.mark]
		}
	}
}

// settle accounts refused emits after a call; interrupted drops them.
func (em *emitter) settle(interrupted bool) {
	em.lock()
	defer em.unlock()
	if !interrupted {
		for _, d := range em.refused {
			d.abandoned.Add(1)
		}
	}
	em.refused = em.refused[:0]
}

// async makes em safe for a plugin.Flusher's goroutines.
func (em *emitter) async() { em.mu = new(sync.Mutex) }

// lock and unlock guard a Flusher's emitter against its own goroutines;
// other nodes' emitters are used by the node goroutine alone.
func (em *emitter) lock() {
	if em.mu != nil {
		em.mu.Lock()
	}
}

func (em *emitter) unlock() {
	if em.mu != nil {
		em.mu.Unlock()
	}
}

func (em *emitter) Emit(p *packet.Packet) error { return em.EmitPort("", p) }

func (em *emitter) EmitPort(port string, p *packet.Packet) error {
	if em.mu != nil {
		em.mu.Lock()
		defer em.mu.Unlock()
	}
	x := em.x
	if em.source {
		if x.srcCtx.Err() != nil {
			return plugin.ErrStop
		}
		if max := x.opts.MaxEvents; max > 0 {
			k := x.emitted.Add(1)
			if k > max {
				return plugin.ErrStop
			}
			if k == max {
				// The budget is spent with this packet: stop every source
				// before any of them reads another item.
				defer x.srcCancel()
			}
		}
		x.srcEmit.Add(1)
	} else if x.interrupted() {
		// The drain is over: what a node still emits is abandoned where
		// it would have gone.
		for _, o := range em.n.out {
			if o.port == port {
				em.refused = append(em.refused, o.dst)
			}
		}
		return plugin.ErrStop
	}
	em.produced++
	if ts := em.n.taps.Load(); ts != nil && !em.n.tapIn {
		ts.call(port, p)
	}
	eager := em.source || em.mu != nil
	if eager {
		em.n.produced.Add(em.produced)
		em.produced = 0
	}
	var w int64
	if x.weighted {
		w = packet.Weight(p)
	}
	for _, o := range em.n.out {
		if o.port != port {
			continue
		}
		o.buf = append(o.buf, item{p: p, port: o.toPort, w: w})
		if eager || len(o.buf) >= x.opts.BatchMax {
			if em.produced > 0 {
				em.n.produced.Add(em.produced)
				em.produced = 0
			}
			if err := em.flush(o); err != nil {
				return err
			}
		}
	}
	return nil
}

func (em *emitter) flush(o *outEdge) error {
	if len(o.buf) == 0 {
		return nil
	}
	x := em.x
	if x.plan.Cyclic {
		x.inflight.Add(int64(len(o.buf)))
	}
	if !em.source {
		em.n.pushing.Store(true)
	}
	dropped, err := o.dst.in.push(o.buf)
	if !em.source {
		em.n.pushing.Store(false)
		if em.n.callSince.Load() != 0 {
			em.n.enter() // emitting is progress: the stall clock restarts
		}
	}
	if x.plan.Cyclic && dropped > 0 {
		x.done(dropped)
	}
	k := len(o.buf)
	clear(o.buf)
	o.buf = o.buf[:0]
	o.mark = 0
	switch {
	case errors.Is(err, errOverflow):
		oe := &overflowError{node: o.dst.pn.ID, max: o.dst.in.max, maxBytes: o.dst.in.maxBytes, src: em.n.pn.ID, cycle: o.dst.in.cycleGate}
		if oe.cycle {
			// The cycle's gate is full: the run ends with the gate
			// named. The gate's inbox now discards, so the cycle drains
			// and the sender goes on.
			x.fail(o.dst, "inbox", oe)
			return nil
		}
		return oe
	case errors.Is(err, errAborted):
		o.dst.abandoned.Add(int64(k))
		return plugin.ErrStop
	}
	return err
}

func (em *emitter) flushAll() {
	if em.mu != nil {
		em.mu.Lock()
		defer em.mu.Unlock()
	}
	if em.produced > 0 {
		em.n.produced.Add(em.produced)
		em.produced = 0
	}
	for _, o := range em.n.out {
		if err := em.flush(o); err != nil && !errors.Is(err, plugin.ErrStop) {
			em.x.fail(em.n, "emit", err)
		}
	}
}

type overflowError struct {
	node, src string
	max       int
	maxBytes  int64
	cycle     bool
}

func (e *overflowError) Error() string {
	if e.cycle {
		bound := strconv.Itoa(e.max) + " packets"
		if e.maxBytes > 0 {
			bound += " or " + strconv.FormatInt(e.maxBytes, 10) + " bytes"
		}
		return "inbox of cycle node " + strconv.Quote(e.node) + " is full (" + bound + ", from " + strconv.Quote(e.src) +
			"): the cycle grows faster than it drains; raise config.__runtime__.inbox_max, or set " +
			"config.__runtime__.inbox_overflow: drop_new or drop_oldest to drop instead"
	}
	return "inbox overflow: node=" + e.node + " max=" + strconv.Itoa(e.max) + " policy=error (src=" + e.src + ")"
}
