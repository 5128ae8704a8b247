package runtime

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// item is one packet on its way into a node, with the to_port of its edge.
type item struct {
	p    *packet.Packet
	port string
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
	max      int // bound in packets; 0 = unbounded
	policy   int
	senders  int  // open upstream edges
	closed   bool // no more input will come (all senders closed, or forced)
	discard  bool // the receiver failed: accept and drop
	aborted  bool
	waiting  bool // receiver is waiting for input

	dropped atomic.Int64 // packets dropped by the overflow policy
}

func newInbox(max, policy, senders int) *inbox {
	in := &inbox{max: max, policy: policy, senders: senders}
	in.notEmpty.L = &in.mu
	in.notFull.L = &in.mu
	if senders == 0 {
		in.closed = true
	}
	return in
}

func (in *inbox) queued() int { return len(in.buf) - in.head }

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
	case in.policy == overflowBlock:
		// Wait for room, then take the whole batch: the bound is exceeded
		// by at most one sender batch, which keeps hand-off batched.
		for in.queued() >= in.max && !in.aborted && !in.discard {
			in.notFull.Wait()
		}
		if in.aborted {
			return 0, errAborted
		}
		if in.discard {
			return len(items), nil
		}
		in.buf = append(in.buf, items...)
	default:
		for _, it := range items {
			if in.queued() < in.max {
				in.buf = append(in.buf, it)
				continue
			}
			switch in.policy {
			case overflowDropNew:
				dropped++
			case overflowDropOldest:
				in.buf[in.head] = item{}
				in.head++
				in.buf = append(in.buf, it)
				dropped++
				if in.head > 64 && in.head*2 > len(in.buf) {
					// Compact so a stalled receiver cannot make buf grow.
					n := copy(in.buf, in.buf[in.head:])
					clear(in.buf[n:])
					in.buf = in.buf[:n]
					in.head = 0
				}
			case overflowErr:
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
	for in.queued() == 0 && !in.closed && !in.aborted {
		in.waiting = true
		in.notEmpty.Wait()
		in.waiting = false
	}
	if in.aborted || in.queued() == 0 {
		return nil, false
	}
	n := in.queued()
	if limit > 0 && n > limit {
		out := in.buf[in.head : in.head+limit]
		// Copy out: the sender may append (and reallocate) after unlock.
		in.spare = append(in.spare[:0], out...)
		clear(out)
		in.head += limit
		in.notFull.Broadcast()
		return in.spare, true
	}
	out := in.buf[in.head:]
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
	clear(in.buf)
	in.buf = in.buf[:0]
	in.head = 0
	in.notFull.Broadcast()
	return n
}

// abort wakes everyone and makes push fail and take end.
func (in *inbox) abort() {
	in.mu.Lock()
	in.aborted = true
	in.notEmpty.Broadcast()
	in.notFull.Broadcast()
	in.mu.Unlock()
}

func (in *inbox) depth() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.queued()
}
