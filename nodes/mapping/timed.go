package mapping

import (
	"sync"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// background lets a node (a plugin.Flusher) emit from a timer goroutine:
// the runtime's Emitter is safe from any goroutine for such a node. The
// emitter is the one the last Process call was given; Flush waits for
// the emits in flight so that nothing is emitted after it returns.
type background struct {
	mu     sync.Mutex // guards the node's state and out
	out    plugin.Emitter
	closed bool
	wg     sync.WaitGroup
}

// remember keeps out for the timer; called with mu held.
func (b *background) remember(out plugin.Emitter) { b.out = out }

// begin is called with mu held before the timer emits outside the lock;
// it returns nil when the node is closed (nothing may be emitted).
func (b *background) begin() plugin.Emitter {
	if b.closed || b.out == nil {
		return nil
	}
	b.wg.Add(1)
	return b.out
}

// emitAll emits ps on out (port "" is the default port); a packet that
// could not be emitted is nacked with the error, as are the ones after it.
func emitAll(out plugin.Emitter, ps []portPacket) error {
	for i, pp := range ps {
		var err error
		if pp.port == "" {
			err = out.Emit(pp.p)
		} else {
			err = out.EmitPort(pp.port, pp.p)
		}
		if err != nil {
			for _, q := range ps[i:] {
				if q.p.Nack != nil {
					q.p.Nack(err)
				}
			}
			return err
		}
	}
	return nil
}

type portPacket struct {
	port string
	p    *packet.Packet
}

// acks is the Ack and Nack of the inputs a derived packet stands for:
// the output's Ack acknowledges every input (a durable sink calls it
// after its commit), its Nack nacks every input.
type acks struct {
	ack  []func()
	nack []func(error)
}

func (a *acks) add(p *packet.Packet) {
	if p.Ack != nil {
		a.ack = append(a.ack, p.Ack)
	}
	if p.Nack != nil {
		a.nack = append(a.nack, p.Nack)
	}
}

func (a *acks) merge(b *acks) {
	a.ack = append(a.ack, b.ack...)
	a.nack = append(a.nack, b.nack...)
}

// set gives p the inputs' Ack and Nack (none when no input had one).
func (a *acks) set(p *packet.Packet) {
	if ack := a.ack; len(ack) > 0 {
		p.Ack = func() {
			for _, f := range ack {
				f()
			}
		}
	}
	if nack := a.nack; len(nack) > 0 {
		p.Nack = func(err error) {
			for _, f := range nack {
				f(err)
			}
		}
	}
}

// nackAll nacks the inputs (what a node still holds when it is closed
// without a flush: its origin retries them).
func (a *acks) nackAll(err error) {
	for _, f := range a.nack {
		f(err)
	}
}
