// The transaction core: the txn the writer goroutine runs operations in, its
// statement cache, begin/commit, recount and maintenance, and
// publishCommitted, which applies a committed transaction to the core and
// the handles.

package queue

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"time"
)

// txn is the writer goroutine's view of one transaction (or, for reads,
// of the connection).
type txn struct {
	c    *core
	conn *sql.Conn
	ctx  context.Context
	now  time.Time

	dRows, dBytes int64 // depth change made by this transaction
	dPending      int64 // acked rows added (+) or compacted (-) by this transaction
	floor         int64 // new lease floor (0: unchanged)
	lowerFloor    bool  // a row may have become available again: reset the floor
	recounted     bool  // depth was recounted inside this transaction
	newRows       bool  // rows were added (wake readers)
	committedOps  []*op // enqueue ops, for counters after commit

	h       *Queue   // the handle of the op being run
	heldOps []heldOp // leases taken and settled, in order, applied after commit
	deaths  []death  // rows moved to the dead letters, reported after commit
}

// heldOp is a row leased by h, or settled (acked, nacked, released,
// dead) when h is nil.
type heldOp struct {
	seq int64
	h   *Queue
}

type death struct {
	h      *Queue
	seq    int64
	reason string
}

func (t *txn) settle(seq int64) { t.heldOps = append(t.heldOps, heldOp{seq: seq}) }

func (t *txn) nowMs() int64 { return t.now.UnixMilli() }

func (t *txn) stmt(q string) (*sql.Stmt, error) {
	if s, ok := t.c.stmts[q]; ok {
		return s, nil
	}
	s, err := t.conn.PrepareContext(context.Background(), q)
	if err != nil {
		return nil, err
	}
	t.c.stmts[q] = s
	return s, nil
}

func (t *txn) exec(q string, args ...any) (sql.Result, error) {
	s, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(t.ctx, args...)
}

func (t *txn) queryRow(q string, args ...any) *sql.Row {
	s, err := t.stmt(q)
	if err != nil {
		// Surface the prepare error through Scan.
		return t.conn.QueryRowContext(t.ctx, q, args...)
	}
	return s.QueryRowContext(t.ctx, args...)
}

func (t *txn) query(q string, args ...any) (*sql.Rows, error) {
	s, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(t.ctx, args...)
}

func (t *txn) begin() error {
	_, err := t.conn.ExecContext(t.ctx, "BEGIN IMMEDIATE")
	return err
}

func (t *txn) commit() error {
	_, err := t.conn.ExecContext(t.ctx, "COMMIT")
	return err
}

func (t *txn) rollback() {
	// Fails harmlessly when SQLite already rolled back (e.g. SQLITE_FULL).
	_, _ = t.conn.ExecContext(context.Background(), "ROLLBACK")
}

// prepare runs at the start of every write transaction: notices other
// connections' writes and does periodic upkeep.
func (t *txn) prepare() error {
	var dv int64
	if err := t.conn.QueryRowContext(t.ctx, "PRAGMA data_version").Scan(&dv); err != nil {
		return err
	}
	if dv != t.c.dataVersion {
		t.c.dataVersion = dv
		t.c.depthStale.Store(true)
		t.c.floor = 0 // another connection may have released or requeued rows
	}
	if t.now.Sub(t.c.floorAt) >= floorReset {
		// Leases expire and backoffs end without any event: look at the
		// whole queue again now and then.
		t.c.floor = 0
		t.c.floorAt = t.now
	}
	if t.now.Sub(t.c.lastMaint) >= maintEvery {
		if err := t.maintain(); err != nil {
			return err
		}
		t.c.lastMaint = t.now
	}
	return nil
}

// floorReset is how often leases rescan from the queue head, so rows whose
// lease expired or whose retry delay ended are seen.
const floorReset = time.Second

// maintEvery is how often write transactions prune expired dedup keys,
// old dead letters and state rows whose packet another program deleted.
const maintEvery = time.Minute

func (t *txn) maintain() error {
	if _, err := t.exec(`DELETE FROM schnitzel_queue_dedup WHERE until <= ?`, t.nowMs()); err != nil {
		return err
	}
	if _, err := t.exec(`DELETE FROM schnitzel_queue_state WHERE seq NOT IN (SELECT seq FROM packets)`); err != nil {
		return err
	}
	return t.pruneDead(t.c.deadRetention)
}

// pruneDead applies a handle's dead-letter retention.
func (t *txn) pruneDead(retention time.Duration) error {
	if retention < 0 {
		return nil
	}
	_, err := t.exec(`DELETE FROM schnitzel_queue_dead WHERE dead_at < ?`, t.now.Add(-retention).UnixMilli())
	return err
}

// recount reads the true depth (and bytes when asked or already tracked).
// Depth excludes acked rows waiting for compaction; bytes include them
// until compaction deletes them.
func (t *txn) recount(withBytes bool) error {
	c := t.c
	withBytes = withBytes || c.bytesKnown
	var rows, bytes, acked int64
	var err error
	if withBytes {
		err = t.conn.QueryRowContext(t.ctx, `SELECT COUNT(*), COALESCE(SUM(`+sizeSQL+`),0) FROM packets`).Scan(&rows, &bytes)
	} else {
		err = t.conn.QueryRowContext(t.ctx, `SELECT COUNT(*) FROM packets`).Scan(&rows)
	}
	if err != nil {
		return err
	}
	if err := t.conn.QueryRowContext(t.ctx, `SELECT COUNT(*) FROM schnitzel_queue_state s JOIN packets p ON p.seq = s.seq WHERE s.acked = 1`).Scan(&acked); err != nil {
		return err
	}
	c.pending = acked - t.dPending
	rows -= acked
	// The recount already includes this transaction's own changes.
	c.rows.Store(rows - t.dRows)
	if withBytes {
		c.bytes.Store(bytes - t.dBytes)
		c.bytesKnown = true
	}
	c.depthStale.Store(false)
	c.depthAt.Store(time.Now().UnixNano())
	t.recounted = true
	return nil
}

// publishCommitted applies a committed transaction's effects to the core
// (depth, floor, held rows) and to the handles (counters, settled waits,
// OnDead).
func (t *txn) publishCommitted() {
	c := t.c
	switch {
	case t.lowerFloor:
		c.floor = 0
	case t.floor > 0:
		c.floor = t.floor
	}
	c.rows.Add(t.dRows)
	c.bytes.Add(t.dBytes)
	if c.pending == 0 && t.dPending > 0 {
		c.pendingSince = t.now
	}
	c.pending += t.dPending
	for _, o := range t.committedOps {
		for _, r := range o.res[o.mark:o.next] {
			switch {
			case r.Duplicate:
				o.h.duplicates.Add(1)
				if r.Conflict {
					o.h.conflicts.Add(1)
				}
			default:
				o.h.enqueued.Add(1)
			}
		}
	}
	if t.newRows {
		c.signalChanged()
	}
	var notify []*Queue
	for _, ho := range t.heldOps {
		if ho.h != nil {
			if old := c.held[ho.seq]; old != nil {
				old.inflight.Add(-1)
			}
			c.held[ho.seq] = ho.h
			ho.h.inflight.Add(1)
			continue
		}
		if h := c.held[ho.seq]; h != nil {
			delete(c.held, ho.seq)
			h.inflight.Add(-1)
			if !slices.Contains(notify, h) {
				notify = append(notify, h)
			}
		}
	}
	for _, h := range notify {
		h.notifySettled()
	}
	for _, d := range t.deaths {
		if d.h == nil {
			continue
		}
		d.h.deadLettered.Add(1)
		if d.h.opts.OnDead != nil {
			d.h.opts.OnDead(d.seq, d.reason)
		}
	}
}

func (t *txn) depth() (int64, int64) { return t.c.rows.Load() + t.dRows, t.c.bytes.Load() + t.dBytes }

// appendSeq adds n to a JSON array under construction ("[1,2").
func appendSeq(b []byte, n int64) []byte {
	if len(b) == 0 {
		b = append(b, '[')
	} else {
		b = append(b, ',')
	}
	return strconv.AppendInt(b, n, 10)
}
