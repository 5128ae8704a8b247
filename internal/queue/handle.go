// The Queue handle: Open (sharing one core per file in this process), Close, the
// counters and depth it reports, Wait, and do, which runs a function in the
// writer goroutine.

package queue

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Queue is a handle on a queue file. It is safe for concurrent use.
type Queue struct {
	c      *core
	opts   Options
	path   string // as given
	owner  string // lease owner id of this handle
	closed atomic.Bool

	enqueued, duplicates, conflicts, dropped, deadLettered atomic.Int64

	// Lease ownership (see lock.go): the lock is taken at Open for a
	// named consumer, else at the first lease; then the renewer keeps
	// this handle's leases alive and takes dead owners' rows back.
	ownMu     sync.Mutex
	owned     atomic.Bool // the lock was taken (the handle may hold leases)
	lock      *ownerLock
	sweep     SweepReport // the first sweep's findings
	renewStop chan struct{}
	renewDone chan struct{}
	renewKick chan struct{} // the lease duration changed
	leaseDur  atomic.Int64  // ns, of the last lease
	inflight  atomic.Int64  // rows leased by this handle, not yet acked, nacked or released
	elsewhere atomic.Int64  // rows leased by other live owners, at the last sweep
	settleMu  sync.Mutex
	settled   chan struct{} // closed and replaced when inflight goes down
}

// pool shares one core per file within the process, so that every node on
// a file group-commits together and never contends for the file lock
// with itself.
var pool = struct {
	sync.Mutex
	m map[string]*core
}{m: map[string]*core{}}

// Open opens (creating it and its parent directories unless MustExist) the
// queue file at path, relative to the working directory. ":memory:" is a
// private in-memory queue.
func Open(path string, opts Options) (*Queue, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, &Error{Path: path, Op: "open", Err: err}
	}
	if strings.TrimSpace(path) == "" {
		return nil, &Error{Path: path, Op: "open", Err: errors.New("empty path")}
	}
	key := path
	if path != ":memory:" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, &Error{Path: path, Op: "open", Err: err}
		}
		key = abs
	}
	h := &Queue{opts: opts, path: path, owner: packet.NewID(), settled: make(chan struct{}), renewKick: make(chan struct{}, 1)}
	if opts.Consumer != "" {
		h.owner = opts.Consumer
	}
	if path == ":memory:" || opts.Private {
		c, err := openCore(path, key, opts)
		if err != nil {
			return nil, err
		}
		c.refs = 1
		h.c = c
		if opts.Acks {
			c.ackers.Add(1)
		}
		if err := h.openConsumer(); err != nil {
			h.Close()
			return nil, err
		}
		return h, nil
	}
	if err := h.joinPool(key); err != nil {
		return nil, err
	}
	if err := h.openConsumer(); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// joinPool attaches h to the process's core for the file, opening it
// if this is the file's first handle.
func (h *Queue) joinPool(key string) error {
	pool.Lock()
	defer pool.Unlock()
	c := pool.m[key]
	if c == nil {
		var err error
		c, err = openCore(h.path, key, h.opts)
		if err != nil {
			return err
		}
		pool.m[key] = c
		c.pooled = true
	} else if err := c.join(h.opts); err != nil {
		return err
	}
	c.refs++
	h.c = c
	if h.opts.Acks {
		c.ackers.Add(1)
	}
	return nil
}

// openConsumer takes a named consumer's lock at Open.
func (q *Queue) openConsumer() error {
	if q.opts.Consumer == "" {
		return nil
	}
	return q.own(context.Background())
}

// Path returns the path the queue was opened with.
func (q *Queue) Path() string { return q.path }

// ID returns the queue's id, stored in the file: acks carrying another id
// are refused.
func (q *Queue) ID() string { return q.c.id }

// Options returns the handle's options with defaults applied.
func (q *Queue) Options() Options { return q.opts }

// Close releases this handle's leases (without counting an attempt: a
// clean stop is not a failed delivery) and, when it is the file's last
// handle in the process, closes the connection. It is idempotent.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	q.stopRenew()
	var relErr error
	if !q.c.readOnly {
		relErr = q.c.submit(&op{ctx: context.Background(), h: q, write: true, done: make(chan struct{}),
			fn: func(t *txn) error { return t.releaseOwner(q) }})
		if errors.Is(relErr, ErrClosed) {
			relErr = nil
		}
	}
	q.ownMu.Lock()
	// A random name is never used again: its file can go.
	q.lock.release(q.opts.Consumer == "")
	q.lock = nil
	q.ownMu.Unlock()
	if q.opts.Acks {
		q.c.ackers.Add(-1)
	}
	c := q.c
	last := false
	if c.pooled {
		pool.Lock()
		c.refs--
		if c.refs == 0 {
			delete(pool.m, c.key)
			last = true
		}
		pool.Unlock()
	} else {
		last = true
	}
	if last {
		if err := c.close(); err != nil {
			return err
		}
	}
	if relErr != nil {
		return wrap(q.path, "close", relErr)
	}
	return nil
}

// Counters of this handle since Open.
type Counters struct {
	Enqueued   int64 // rows newly stored
	Duplicates int64 // enqueues whose key was already known (stored, or acked within the dedup window)
	Conflicts  int64 // duplicates whose payload differed from the stored row (the new payload was discarded)
	Dropped    int64 // rows deleted by drop_oldest to make room
	// DeadLettered counts rows this handle moved to the dead-letter
	// table: nacked past max attempts or permanently, out of attempts at
	// lease, undecodable, or charged a last attempt for a dead owner.
	DeadLettered int64
}

// Commits returns how many write transactions this process committed on
// the file: with group commit, fewer than the enqueue calls.
func (q *Queue) Commits() int64 { return q.c.commits.Load() }

// Counters returns this handle's counters.
func (q *Queue) Counters() Counters {
	return Counters{q.enqueued.Load(), q.duplicates.Load(), q.conflicts.Load(), q.dropped.Load(), q.deadLettered.Load()}
}

// Depth returns the number of queued rows (leased ones included). It is
// exact for this process's writes; another process's writes are seen at
// this handle's next operation or within a second.
func (q *Queue) Depth() int64 {
	c := q.c
	if c.depthStale.Load() && time.Since(time.Unix(0, c.depthAt.Load())) > time.Second && !q.closed.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = q.do(ctx, false, func(t *txn) error { return t.recount(false) })
		cancel()
	}
	return c.rows.Load()
}

// Wait blocks until a commit in this process changed the queue, d passes,
// or ctx ends. Readers in follow mode use it to wake up as soon as a row is
// enqueued in-process, and to poll at d for other processes.
func (q *Queue) Wait(ctx context.Context, d time.Duration) {
	q.c.mu.Lock()
	ch := q.c.changed
	q.c.mu.Unlock()
	waitOn(ctx, ch, d)
}

// waitOn blocks until ch is closed, d passes, or ctx ends.
func waitOn(ctx context.Context, ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// do runs fn on the writer goroutine, inside a write transaction shared
// with whatever else is waiting when write is true.
func (q *Queue) do(ctx context.Context, write bool, fn func(t *txn) error) error {
	if q.closed.Load() {
		return &Error{Path: q.path, Op: "use", Kind: ErrClosed}
	}
	o := &op{ctx: ctx, h: q, write: write, fn: fn, done: make(chan struct{})}
	return q.c.submit(o)
}
