// The core: one connection per file and its writer goroutine, which groups
// waiting operations into one transaction (group commit); opening a file
// for writing or read-only.

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
)

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
	t.publishCommitted()
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
