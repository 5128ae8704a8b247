package runtime

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// item is one packet on its way into a node, with the to_port of its edge
// and its weight (packet.Weight; 0 unless the graph weighs packets).
type item struct {
	p    *packet.Packet
	port string
	w    int64
}

// Overflow policies (graph.Overflow*).
const (
	overflowBlock = iota
	overflowDropNew
	overflowDropOldest
	overflowErr
)

var errOverflow = errors.New("inbox overflow")
var errAborted = errors.New("run aborted")

// inbox is a node's bounded input queue. Senders push batches under one
// lock; the receiver takes everything queued in one go (double-buffered),
// so lock and wake-up costs are paid per batch, not per packet.
//
// Lock order: an inbox lock is never held while taking another lock.
type inbox struct {
	mu       sync.Mutex
	notEmpty sync.Cond
	notFull  sync.Cond
	buf      []item
	head     int // buf[head:] is queued
	spare    []item
	max      int   // bound in packets; 0 = unbounded
	maxBytes int64 // bound in item weight; 0 = none
	bytes    int64 // weight queued, plus lent
	lent     int64 // weight of the receiver's current batch: counted until its next take
	policy   int
	senders  int  // open upstream edges
	closed   bool // no more input will come (all senders closed, or forced)
	discard  bool // the receiver failed: accept and drop
	aborted  bool
	waiting  bool // receiver is waiting for input
	// cycleGate marks the inbox of a delay/initial node on a cycle: never
	// blocks (policy error or drop), so the cycle cannot deadlock.
	cycleGate bool

	dropped atomic.Int64 // packets dropped by the overflow policy
}

func newInbox(max int, maxBytes int64, policy, senders int) *inbox {
	in := &inbox{max: max, maxBytes: maxBytes, policy: policy, senders: senders}
	in.notEmpty.L = &in.mu
	in.notFull.L = &in.mu
	if senders == 0 {
		in.closed = true
	}
	return in
}

func (in *inbox) queued() int { return len(in.buf) - in.head }

// full says whether a bounded inbox (max > 0) is full: the packet count,
// or the weight when the inbox holds something (an empty inbox takes any
// packet, so a value heavier than the bound still passes).
func (in *inbox) full() bool {
	n := in.queued()
	return n >= in.max || (in.maxBytes > 0 && n > 0 && in.bytes >= in.maxBytes)
}

// weight sums items' weights; 0 for an inbox without a byte bound, which
// counts none.
func (in *inbox) weight(items []item) int64 {
	if in.maxBytes == 0 {
		return 0
	}
	var w int64
	for i := range items {
		w += items[i].w
	}
	return w
}

// push appends items, applying the overflow policy. It returns how many
// were dropped and errOverflow under policy error, errAborted after abort.
func (in *inbox) push(items []item) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.aborted {
		return 0, errAborted
	}
	if in.discard {
		return len(items), nil
	}
	dropped := 0
	switch {
	case in.max == 0:
		in.buf = append(in.buf, items...)
		in.bytes += in.weight(items)
	case in.policy == overflowBlock:
		// Wait for room, then take the whole batch: the bound is exceeded
		// by at most one sender batch, which keeps hand-off batched.
		for in.full() && !in.aborted && !in.discard {
			in.notFull.Wait()
		}
		if in.aborted {
			return 0, errAborted
		}
		if in.discard {
			return len(items), nil
		}
		in.buf = append(in.buf, items...)
		in.bytes += in.weight(items)
	default:
		for i, it := range items {
			if !in.full() {
				in.buf = append(in.buf, it)
				in.bytes += in.weight(items[i : i+1])
				continue
			}
			switch in.policy {
			case overflowDropNew:
				dropped++
			case overflowDropOldest:
				// Drop from the head until below the bound again: one
				// heavy newcomer may take the place of several packets.
				for in.queued() > 0 && in.full() {
					in.bytes -= in.weight(in.buf[in.head : in.head+1])
					in.buf[in.head] = item{}
					in.head++
					dropped++
				}
				in.buf = append(in.buf, it)
				in.bytes += in.weight(items[i : i+1])
				if in.head > 64 && in.head*2 > len(in.buf) {
					// Compact so a stalled receiver cannot make buf grow.
					n := copy(in.buf, in.buf[in.head:])
					clear(in.buf[n:])
					in.buf = in.buf[:n]
					in.head = 0
				}
			case overflowErr:
				// The rest is not taken: the caller counts it with the
				// drops (a cycle's in-flight count must stay exact).
				dropped += len(items) - i
				in.dropped.Add(int64(dropped))
				return dropped, errOverflow
			}
		}
	}
	if dropped > 0 {
		in.dropped.Add(int64(dropped))
	}
	if in.waiting {
		in.notEmpty.Signal()
	}
	return dropped, nil
}

// take waits for input and returns every queued item (up to limit), or
// ok=false once the inbox is closed and empty. The returned slice is valid
// until the next take.
func (in *inbox) take(limit int) ([]item, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.lent > 0 {
		// The receiver asks again: it is done with its last batch, whose
		// packets counted against the byte bound until now (a slow node's
		// batch of frames is memory too).
		in.bytes -= in.lent
		in.lent = 0
		in.notFull.Broadcast()
	}
	for in.queued() == 0 && !in.closed && !in.aborted {
		in.waiting = true
		in.notEmpty.Wait()
		in.waiting = false
	}
	if in.aborted || in.queued() == 0 {
		return nil, false
	}
	n := in.queued()
	if in.maxBytes > 0 {
		// A batch carries one heavy packet at most (with the light ones
		// before it): a node works on one frame at a time, and converts
		// one at a time (a frame read as BGR triples in size after it
		// was weighed), so what it holds stays near its bound.
		for i, it := range in.buf[in.head:] {
			if limit > 0 && i >= limit {
				break
			}
			if it.w > 0 {
				limit = i + 1
				break
			}
		}
	}
	if limit > 0 && n > limit {
		out := in.buf[in.head : in.head+limit]
		in.lent = in.weight(out)
		// Copy out: the sender may append (and reallocate) after unlock.
		in.spare = append(in.spare[:0], out...)
		clear(out)
		in.head += limit
		in.notFull.Broadcast()
		return in.spare, true
	}
	out := in.buf[in.head:]
	in.lent = in.weight(out)
	// Swap buffers: hand the queued slice to the receiver and give the
	// senders the receiver's previous (cleared) slice.
	clear(in.spare)
	next := in.spare[:0]
	in.spare = out
	in.buf = next
	in.head = 0
	in.notFull.Broadcast()
	return out, true
}

// closeSender records that one upstream edge has finished.
func (in *inbox) closeSender() {
	in.mu.Lock()
	in.senders--
	if in.senders <= 0 {
		in.closed = true
		in.notEmpty.Broadcast()
	}
	in.mu.Unlock()
}

// forceClose ends input regardless of senders (cycles, when quiescent).
func (in *inbox) forceClose() {
	in.mu.Lock()
	in.closed = true
	in.notEmpty.Broadcast()
	in.mu.Unlock()
}

// setDiscard makes the inbox accept and drop everything: its node failed,
// and its upstream must not block on it while the graph drains.
func (in *inbox) setDiscard() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.discard = true
	n := in.queued()
	in.dropped.Add(int64(n))
	in.bytes, in.lent = 0, 0
	clear(in.buf)
	in.buf = in.buf[:0]
	in.head = 0
	in.notFull.Broadcast()
	return n
}

// abandon is abort that also empties the inbox, returning how many
// packets were queued: the stop gave up on them.
func (in *inbox) abandon() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.aborted = true
	n := in.queued()
	clear(in.buf)
	in.buf, in.head, in.bytes, in.lent = in.buf[:0], 0, 0, 0
	in.notEmpty.Broadcast()
	in.notFull.Broadcast()
	return n
}

func (in *inbox) depth() (int, int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.queued(), in.bytes
}
