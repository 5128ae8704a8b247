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
}

// async makes em safe for a plugin.Flusher's goroutines.
func (em *emitter) async() { em.mu = new(sync.Mutex) }

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
	} else if x.aborted.Load() {
		return plugin.ErrStop
	}
	em.produced++
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
	dropped, err := o.dst.in.push(o.buf)
	if x.plan.Cyclic && dropped > 0 {
		x.done(dropped)
	}
	clear(o.buf)
	o.buf = o.buf[:0]
	switch {
	case errors.Is(err, errOverflow):
		return &overflowError{node: o.dst.pn.ID, max: o.dst.in.max, src: em.n.pn.ID}
	case errors.Is(err, errAborted):
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
}

func (e *overflowError) Error() string {
	return "inbox overflow: node=" + e.node + " max=" + strconv.Itoa(e.max) + " policy=error (src=" + e.src + ")"
}
