// Package queue is a durable store-and-forward queue in one SQLite file
// (WAL mode), on the pure-Go modernc.org/sqlite driver. It knows nothing
// about graphs or plugins: it stores packets and hands them to readers.
//
// File format. The packets table has the Python project's exact schema and
// column meanings (seq AUTOINCREMENT, enqueued_at, idempotency_key UNIQUE,
// packet_id, ts, kind, source_id, payload_json, meta_json), so either
// implementation drains a file the other wrote. Everything else lives in
// additive tables that the Python code never touches:
//
//	schnitzel_queue_meta   queue_id (UUID) and schema_version
//	schnitzel_queue_state  per-row leases, failed attempts, retry time, last error
//	schnitzel_queue_dead   dead letters (the packets columns plus attempts, error, time)
//	schnitzel_queue_dedup  idempotency keys of acked rows, kept for the dedup window
//
// Guarantees. Enqueue returns only after the transaction holding its rows
// has committed (synchronous=FULL by default: the commit is on disk).
// Concurrent enqueues, leases, acks and nacks on one file in one process
// share a connection and one writer goroutine, which commits everything
// that is waiting in one transaction: one fsync per group, not per row
// (group commit). A leased row is hidden from every other reader, in this
// or another process, until it is acked, nacked or released. Leases
// belong to an owner that holds a lock file while it lives (owner.go,
// lock.go): a live owner renews them, a dead owner's rows are taken back
// at once, charged an attempt only if the owner was delivering them, so
// a row that crashes its reader ends in the dead-letter table after
// max_attempts while rows only read ahead are never charged.
//
// Lock order: pool.mu before core.mu; neither is held while waiting for
// the writer goroutine.
package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Overflow policies for a bounded queue.
const (
	OverflowBlock      = "block"       // Enqueue waits for room (ctx-cancellable)
	OverflowDropOldest = "drop_oldest" // the oldest rows are deleted to make room (counted)
)

// Options tunes a queue handle. The zero value is usable: see the defaults.
type Options struct {
	// Synchronous is the SQLite synchronous level: "FULL" (default: every
	// commit is on disk when Enqueue returns) or "NORMAL" (WAL commits may
	// be lost on power failure, never corrupted). Handles sharing a file in
	// one process use the strongest level any of them asked for.
	Synchronous string
	// BusyTimeout is how long a statement waits for another process's
	// lock on the file (default 30s, as upstream's sqlite3 timeout).
	BusyTimeout time.Duration
	// MaxRows and MaxBytes bound the queued rows (0 = unbounded). Bytes
	// count the stored text of a row (payload, meta, ids, kind, ts).
	MaxRows  int64
	MaxBytes int64
	// Overflow is what Enqueue does at a bound: OverflowBlock (default) or
	// OverflowDropOldest.
	Overflow string
	// DedupWindow is how long an idempotency key stays known after its row
	// was acked, so a replay is not enqueued again (default 24h; negative
	// disables).
	DedupWindow time.Duration
	// MaxAttempts is how many failed deliveries (nacks or expired leases)
	// move a row to the dead-letter table (default 5).
	MaxAttempts int
	// RetryBackoff is the delay before a nacked row is offered again; it
	// doubles per failed attempt up to RetryBackoffMax (defaults 1s, 5m).
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
	// DeadRetention is how long dead letters are kept (default 7 days;
	// negative keeps them until purged).
	DeadRetention time.Duration
	// MaxPageCount, if > 0, caps the file size in pages (PRAGMA
	// max_page_count): an operator's disk quota, and how tests fill the
	// "disk".
	MaxPageCount int64
	// MustExist makes Open fail with ErrNotExist instead of creating the
	// file (admin commands).
	MustExist bool
	// Private gives this handle its own connection and writer instead of
	// sharing the process-wide one for the file: tests use it to act as
	// a second process.
	Private bool
	// Consumer names the reader: its leases are stored under this name
	// and it holds the name's lock file (see lock.go) while open, so Open
	// fails with ErrConsumerBusy when a live process already uses the
	// name, and rows a dead run of the same name left leased are taken
	// back at once. Empty: a random name, locked at the first lease.
	Consumer string
	// ReadOnly opens the file without writing anything (mode=ro, and
	// immutable=1 when the directory does not allow SQLite's shared
	// memory file): admin commands that only read. Implies Private and
	// MustExist.
	ReadOnly bool
	// Acks marks a handle that acks rows (the ack sink): a reader on the
	// same file in this process then windows its leases (MaxInFlight in
	// the source), knowing that acks will free the window.
	Acks bool
	// OnDead, if set, is told of every row this handle moved to the
	// dead-letter table, after the commit (from the writer goroutine: it
	// must not use the queue).
	OnDead func(seq int64, reason string)
	// Logger receives debug notes (a skipped quick_check); may be nil.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Synchronous == "" {
		o.Synchronous = "FULL"
	}
	o.Synchronous = strings.ToUpper(o.Synchronous)
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 30 * time.Second
	}
	if o.Overflow == "" {
		o.Overflow = OverflowBlock
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = 24 * time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	if o.RetryBackoffMax < o.RetryBackoff {
		o.RetryBackoffMax = max(o.RetryBackoff, 5*time.Minute)
	}
	if o.DeadRetention == 0 {
		o.DeadRetention = 7 * 24 * time.Hour
	}
	if o.ReadOnly {
		o.Private, o.MustExist = true, true
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	switch o.Synchronous {
	case "FULL", "NORMAL", "EXTRA":
	default:
		return fmt.Errorf("synchronous must be FULL or NORMAL, got %q", o.Synchronous)
	}
	switch o.Overflow {
	case OverflowBlock, OverflowDropOldest:
	default:
		return fmt.Errorf("overflow must be %s or %s, got %q", OverflowBlock, OverflowDropOldest, o.Overflow)
	}
	if o.MaxRows < 0 || o.MaxBytes < 0 {
		return errors.New("max_rows and max_bytes must be >= 0")
	}
	return nil
}

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

// core is one connection to one file plus its writer goroutine.
type core struct {
	path   string // as first opened
	key    string // absolute path, pool key
	db     *sql.DB
	conn   *sql.Conn
	id     string
	pooled bool
	refs   int // guarded by pool.mu when pooled

	reqs chan *op
	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after each commit that changed packets
	syncLvl string
	closed  bool

	dsn       string
	busy      time.Duration        // busy timeout for Load's connections
	rdb       *sql.DB              // Load's connections (nil until first used, and for ":memory:"); guarded by mu
	stmts     map[string]*sql.Stmt // writer goroutine only
	chunkArgs []any                // insertChunk's argument buffer; writer goroutine only

	// Depth cache: exact for our own commits; stale when data_version
	// says another connection wrote.
	rows, bytes  atomic.Int64
	depthStale   atomic.Bool
	depthAt      atomic.Int64 // unix ns of the last recount
	bytesKnown   bool         // writer goroutine only
	pending      int64        // acked rows awaiting compaction; writer goroutine only
	pendingSince time.Time    // when pending last became > 0
	floor        int64        // rows below are not available to lease (see txn.lease); writer goroutine only
	floorAt      time.Time    // last reset of floor
	dataVersion  int64        // writer goroutine only
	lastMaint    time.Time    // writer goroutine only
	compactNext  time.Time    // no compaction chunk before this (pacing); writer goroutine only

	deadRetention time.Duration // from the first handle's options
	commits       atomic.Int64  // write transactions committed (group commits)

	readOnly bool             // opened with mode=ro: nothing is ever written
	held     map[int64]*Queue // leased rows of this process's handles, by seq; writer goroutine only
	ackers   atomic.Int32     // open handles with Options.Acks
	log      *slog.Logger
}

func (c *core) join(o Options) error {
	c.mu.Lock()
	cur := c.syncLvl
	c.mu.Unlock()
	rank := map[string]int{"NORMAL": 1, "FULL": 2, "EXTRA": 3}
	if rank[o.Synchronous] <= rank[cur] && o.MaxPageCount == 0 {
		return nil
	}
	h := &Queue{c: c, path: c.path, opts: o}
	return h.do(context.Background(), false, func(t *txn) error {
		if rank[o.Synchronous] > rank[cur] {
			if _, err := t.conn.ExecContext(t.ctx, "PRAGMA synchronous="+o.Synchronous); err != nil {
				return err
			}
			c.mu.Lock()
			c.syncLvl = o.Synchronous
			c.mu.Unlock()
		}
		if o.MaxPageCount > 0 {
			if _, err := t.conn.ExecContext(t.ctx, fmt.Sprintf("PRAGMA max_page_count=%d", o.MaxPageCount)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *core) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.quit)
	<-c.done
	for _, s := range c.stmts {
		s.Close()
	}
	var errs []error
	c.mu.Lock()
	if c.rdb != nil {
		errs = append(errs, c.rdb.Close())
	}
	c.mu.Unlock()
	if c.key != ":memory:" {
		// A passive checkpoint moves the WAL into the main file when no
		// reader needs it, so a finished queue is one file again.
		_, _ = c.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
	}
	errs = append(errs, c.conn.Close(), c.db.Close())
	if err := errors.Join(errs...); err != nil {
		return wrap(c.path, "close", err)
	}
	return nil
}

// queryer is what read hands out: a *sql.DB, or the writer's *sql.Conn.
type queryer interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// read runs fn with Load's connection pool: WAL readers that do not wait
// for the writer goroutine and see every committed transaction. An
// in-memory queue has no second connection: fn then runs as a read on
// the writer goroutine.
func (c *core) read(ctx context.Context, h *Queue, fn func(db queryer) error) error {
	if c.key == ":memory:" {
		return h.do(ctx, false, func(t *txn) error { return fn(t.conn) })
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return &Error{Path: c.path, Op: "use", Kind: ErrClosed}
	}
	if c.rdb == nil {
		sep := "?"
		if strings.Contains(c.dsn, "?") {
			sep = "&"
		}
		db, err := sql.Open("sqlite", fmt.Sprintf("%s%s_pragma=busy_timeout(%d)&_pragma=query_only(1)", c.dsn, sep, c.busy.Milliseconds()))
		if err != nil {
			c.mu.Unlock()
			return err
		}
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(4)
		c.rdb = db
	}
	db := c.rdb
	c.mu.Unlock()
	return fn(db)
}

func (c *core) signalChanged() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// op is one request to the writer goroutine.
type op struct {
	ctx   context.Context
	h     *Queue
	write bool
	fn    func(t *txn) error

	// enqueue requests: recs[next:] are still to store
	recs    []Record
	res     []Result
	next    int
	mark    int  // next at the start of the current transaction
	blocked bool // waits for room under OverflowBlock

	err  error
	done chan struct{}
}

func (o *op) rows() int {
	if o.recs != nil {
		return len(o.recs) - o.next
	}
	return 1
}

func (c *core) submit(o *op) error {
	if err := c.send(o); err != nil {
		return err
	}
	// Wake the writer if the caller gives up while the op waits for room;
	// an op already inside a transaction finishes, so the caller learns
	// whether its rows were committed.
	stop := context.AfterFunc(o.ctx, func() {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	})
	defer stop()
	<-o.done
	return o.err
}

// send hands o to the writer goroutine without waiting for it.
func (c *core) send(o *op) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return &Error{Path: c.path, Op: "use", Kind: ErrClosed}
	}
	select {
	case c.reqs <- o:
		return nil
	case <-c.done:
		return &Error{Path: c.path, Op: "use", Kind: ErrClosed}
	case <-o.ctx.Done():
		return o.ctx.Err()
	}
}

func (c *core) loop() {
	defer close(c.done)
	var blocked []*op
	for {
		var batch []*op
		var wait <-chan time.Time
		var timer *time.Timer
		idle := false
		switch {
		case len(blocked) > 0:
			// Room may come from another process: poll.
			timer = time.NewTimer(50 * time.Millisecond)
			wait = timer.C
		case c.pending > 0 && !c.readOnly:
			// Compact acked rows a moment after the first was acked, or
			// when the writer is idle and they are all that is left.
			d := max(0, compactAfter-time.Since(c.pendingSince))
			if c.compactEmpty() {
				d = min(d, compactIdle)
			} else {
				d = max(d, time.Until(c.compactNext))
			}
			timer = time.NewTimer(d)
			wait = timer.C
			idle = true
		}
		select {
		case o := <-c.reqs:
			batch = append(batch, o)
		case <-c.kick:
		case <-wait:
			if idle {
				c.compactPaced()
				continue
			}
		case <-c.quit:
			for _, o := range blocked {
				o.finish(&Error{Path: c.path, Op: "enqueue", Kind: ErrClosed})
			}
			c.drainClosed()
			if c.pending > 0 && !c.readOnly {
				// Leave a file the Python project reads right: no acked
				// rows left in packets.
				c.runWrites([]*op{c.compactOp()})
			}
			return
		}
		if timer != nil {
			timer.Stop()
		}
		// Group commit: take everything already waiting.
		n := 0
		for _, o := range blocked {
			n += o.rows()
		}
		for _, o := range batch {
			n += o.rows()
		}
	gather:
		for n < maxGroupRows && len(batch) < 1024 {
			select {
			case o := <-c.reqs:
				batch = append(batch, o)
				n += o.rows()
			default:
				break gather
			}
		}
		work := append(blocked, batch...)
		blocked = nil
		var writes []*op
		for _, o := range work {
			if err := o.ctx.Err(); err != nil && o.next == 0 {
				o.finish(err)
				continue
			} else if err != nil {
				o.finish(fmt.Errorf("%w after %d of %d rows were committed", err, o.next, len(o.recs)))
				continue
			}
			if !o.write {
				o.finish(c.runRead(o))
				continue
			}
			writes = append(writes, o)
		}
		if len(writes) == 0 && c.pending > 0 && !c.readOnly && (c.compactEmpty() || (time.Since(c.pendingSince) >= compactAfter && time.Now().After(c.compactNext))) {
			writes = append(writes, c.compactOp()) // a stream of reads must not postpone compaction
		}
		if len(writes) > 0 {
			blocked = c.runWrites(writes)
		}
	}
}

// compactPaced runs one compaction chunk and, while a backlog remains,
// leaves the writer to other work for three times as long as the chunk
// took: a restart with a big backlog of acked rows delivers at once and
// at most a quarter slower until the backlog is gone.
func (c *core) compactPaced() {
	t0 := time.Now()
	c.runWrites([]*op{c.compactOp()})
	if c.pending > 0 {
		c.compactNext = time.Now().Add(3 * time.Since(t0))
	}
}

// compactAfter is how long acked rows may wait for compaction (fewer than
// compactEvery of them) while other rows are queued: long enough to gather
// a big delete under load, short enough that the file soon looks drained
// to the Python project. A queue whose rows are all acked is compacted as
// soon as the writer is idle.
const compactAfter = 5 * time.Second

// compactDue says whether a transaction compacts before it commits: when
// every row is acked (a cheap truncate) or too many are waiting. Other
// compaction runs in chunks as transactions of its own (loop), so that a
// backlog of acked rows never delays a lease or an ack by more than a
// chunk.
func (c *core) compactDue(t *txn) bool {
	p := c.pending + t.dPending
	if p > 0 && c.rows.Load()+t.dRows == 0 && !c.depthStale.Load() {
		return true // every row is acked: a cheap truncate
	}
	return p >= compactEvery
}

// compactEmpty reports whether every queued row is acked: compaction is
// then a cheap truncate, worth doing at once.
func (c *core) compactEmpty() bool {
	return c.pending > 0 && c.rows.Load() == 0 && !c.depthStale.Load()
}

// compactIdle is how long the writer must be idle before it compacts a
// queue whose rows are all acked.
const compactIdle = 20 * time.Millisecond

func (c *core) compactOp() *op {
	return &op{ctx: context.Background(), h: &Queue{c: c, path: c.path}, write: true, done: make(chan struct{}),
		fn: func(t *txn) error { return t.compactSome() }}
}

// maxGroupRows bounds one group commit across all handles of a core.
const maxGroupRows = 32768

func (c *core) drainClosed() {
	for {
		select {
		case o := <-c.reqs:
			o.finish(&Error{Path: c.path, Op: "use", Kind: ErrClosed})
		default:
			return
		}
	}
}

func (o *op) finish(err error) {
	o.err = err
	close(o.done)
}

func (c *core) runRead(o *op) error {
	t := &txn{c: c, conn: c.conn, ctx: o.ctx, now: time.Now()}
	return o.fn(t)
}

// runWrites runs ops in one transaction and finishes those that are done;
// it returns the enqueue ops still waiting for room.
func (c *core) runWrites(ops []*op) []*op {
	if c.readOnly {
		for _, o := range ops {
			o.finish(&Error{Path: c.path, Op: o.opName(), Kind: ErrReadOnly, Err: errors.New("opened read-only")})
		}
		return nil
	}
	ctx := context.Background() // an op's ctx must not abort the shared commit
	t := &txn{c: c, conn: c.conn, ctx: ctx, now: time.Now()}
	for _, o := range ops {
		o.mark = o.next
		o.blocked = false
		o.err = nil
	}
	err := t.begin()
	if err == nil {
		err = t.prepare()
	}
	if err == nil {
		for _, o := range ops {
			t.h = o.h
			if o.recs != nil {
				err = t.enqueue(o)
			} else if ferr := o.fn(t); ferr != nil {
				if isSQLite(ferr) {
					err = ferr
				} else {
					o.err = ferr
				}
			}
			if err != nil {
				break
			}
		}
	}
	if err == nil && c.compactDue(t) {
		err = t.compactSome()
	}
	if err == nil {
		err = t.commit()
	}
	if err != nil {
		t.rollback()
		c.depthStale.Store(true) // a recount inside the failed transaction left a wrong base
		for _, o := range ops {
			o.next = o.mark
		}
		if len(ops) > 1 && !errors.Is(wrap(c.path, "", err), ErrFull) {
			// One op may have poisoned the group: give each its own
			// transaction so the others still commit.
			var blocked []*op
			for _, o := range ops {
				blocked = append(blocked, c.runWrites([]*op{o})...)
			}
			return blocked
		}
		for _, o := range ops {
			o.finish(wrap(c.path, o.opName(), err))
		}
		return nil
	}
	t.applied()
	c.commits.Add(1)
	var blocked []*op
	for _, o := range ops {
		if o.blocked && o.err == nil {
			blocked = append(blocked, o)
			continue
		}
		o.finish(o.err)
	}
	return blocked
}

func (o *op) opName() string {
	if o.recs != nil {
		return "enqueue"
	}
	return "write"
}

// openCore opens the file, checks it is a queue (or makes it one) and
// starts the writer goroutine.
func openCore(path, key string, opts Options) (*core, error) {
	fail := func(kind, err error) error { return &Error{Path: path, Op: "open", Kind: kind, Err: err} }
	dsn := ":memory:"
	if key != ":memory:" {
		st, err := os.Stat(key)
		switch {
		case err == nil && st.IsDir():
			return nil, fail(nil, errors.New("is a directory"))
		case errors.Is(err, os.ErrNotExist) && opts.MustExist:
			return nil, fail(ErrNotExist, nil)
		case err == nil && opts.ReadOnly:
			return openReadOnly(path, key, opts)
		case errors.Is(err, os.ErrNotExist):
			if err := os.MkdirAll(filepath.Dir(key), 0o755); err != nil {
				return nil, fail(nil, fmt.Errorf("create parent directory: %w", err))
			}
		case err != nil:
			return nil, fail(nil, err)
		}
		dsn = fileURI(key)
		if opts.MustExist {
			dsn += "?mode=rw"
		}
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fail(nil, err)
	}
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, wrap(path, "open", err)
	}
	c := newCore(path, key, dsn, db, conn, opts)
	if err := c.initSchema(ctx, opts); err != nil {
		conn.Close()
		db.Close()
		return nil, wrap(path, "open", err)
	}
	go c.loop()
	return c, nil
}

// newCore is the state of a file opened on conn, before its schema is
// read or made.
func newCore(path, key, dsn string, db *sql.DB, conn *sql.Conn, opts Options) *core {
	return &core{
		path: path, key: key, db: db, conn: conn, dsn: dsn, busy: opts.BusyTimeout,
		reqs: make(chan *op, 256), kick: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}),
		changed: make(chan struct{}), syncLvl: opts.Synchronous,
		stmts: map[string]*sql.Stmt{}, deadRetention: opts.DeadRetention,
		held: map[int64]*Queue{}, log: opts.Logger,
	}
}

// openReadOnly opens an existing file without writing to it: mode=ro
// first (sees the WAL), immutable=1 when that fails, which happens when
// the directory does not let SQLite create the WAL's shared-memory file
// (a read-only mount). immutable=1 does not see rows still in a WAL
// file; a file left cleanly has none.
func openReadOnly(path, key string, opts Options) (*core, error) {
	var firstErr error
	for _, q := range []string{"?mode=ro", "?mode=ro&immutable=1"} {
		dsn := fileURI(key) + q
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, &Error{Path: path, Op: "open", Err: err}
		}
		db.SetMaxOpenConns(1)
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err == nil {
			c := newCore(path, key, dsn, db, conn, opts)
			c.readOnly = true
			if err = c.initReadOnly(ctx, opts); err == nil {
				go c.loop()
				return c, nil
			}
			conn.Close()
		}
		db.Close()
		var qe *Error
		if errors.As(err, &qe) {
			return nil, err // the file was read: not a queue, newer schema
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, wrap(path, "open", firstErr)
}

// fileURI makes an SQLite URI for an absolute path, escaping the
// characters URI parsing would take as syntax.
func fileURI(abs string) string {
	var b strings.Builder
	b.WriteString("file:")
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		b.WriteString("/") // Windows drive paths: file:/C:/...
	}
	for i := 0; i < len(p); i++ {
		switch ch := p[i]; ch {
		case '?', '#', '%':
			fmt.Fprintf(&b, "%%%02X", ch)
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
