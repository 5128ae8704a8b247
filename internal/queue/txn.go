package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
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

// applied publishes a committed transaction's effects.
func (t *txn) applied() {
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

// insertSQL stores a row unless its key is queued (the unique index) or
// remembered from an acked row: one statement per row.
const insertSQL = `INSERT OR IGNORE INTO packets (enqueued_at, idempotency_key, packet_id, ts, kind, source_id, payload_json, meta_json)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE NOT EXISTS (SELECT 1 FROM schnitzel_queue_dedup WHERE key = ?2 AND until > ?9)`

// insertChunkMax is the most rows one multi-row INSERT stores: one
// statement per chunk instead of per row saves the per-statement work
// (database/sql round trip, cursor setup and teardown, the sqlite_sequence
// update of AUTOINCREMENT), which costs as much as the row's b-tree work.
const insertChunkMax = 64

// insertChunkSQL is insertSQL for k rows: ?1 is enqueued_at, ?2 now, then
// seven anonymous parameters per row (numbered 3... as they follow ?1 and
// ?2 in the text; numbered ones would make the driver's per-parameter
// sqlite3_bind_parameter_name search a list as long as the statement's).
// VALUES rows are inserted in order, so seqs follow the records' order as
// with one statement per row.
func insertChunkSQL(k int) string {
	if q := chunkSQLs[k]; q != "" {
		return q
	}
	return buildChunkSQL(k)
}

func buildChunkSQL(k int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR IGNORE INTO packets (enqueued_at, idempotency_key, packet_id, ts, kind, source_id, payload_json, meta_json)
SELECT ?1, v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7 FROM (SELECT ?2 AS now) AS n CROSS JOIN (VALUES `)
	for i := 0; i < k; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?)")
	}
	b.WriteString(`) AS v WHERE NOT EXISTS (SELECT 1 FROM schnitzel_queue_dedup WHERE key = v.column1 AND until > n.now)`)
	return b.String()
}

// chunkSQLs holds insertChunkSQL for the chunk sizes chunkFits returns.
var chunkSQLs = func() map[int]string {
	m := map[int]string{}
	for k := insertChunkMax; k >= 1; k /= 2 {
		m[k] = buildChunkSQL(k)
	}
	return m
}()

// chunkFits returns how many of o's next records go into one multi-row
// INSERT: a power of two up to insertChunkMax, so few statements are
// prepared. A bounded queue takes the chunk only when all of it fits
// (duplicates take no room, so this errs on the safe side); otherwise the
// per-row path applies the overflow policy row by row.
func (t *txn) chunkFits(o *op, enqAt string, bounded bool) (int, bool) {
	k := insertChunkMax
	for k > len(o.recs)-o.next {
		k /= 2
	}
	if !bounded {
		return k, true
	}
	opts := o.h.opts
	rows, bytes := t.depth()
	if opts.MaxRows > 0 && rows+int64(k) > opts.MaxRows {
		return 0, false
	}
	if opts.MaxBytes > 0 {
		for i := o.next; i < o.next+k; i++ {
			bytes += o.recs[i].size(enqAt)
		}
		if bytes > opts.MaxBytes {
			return 0, false
		}
	}
	return k, true
}

// insertChunk stores o.recs[o.next:o.next+k] with one statement. When
// every row is new (the common case) their seqs are the k seqs after the
// previous maximum. Otherwise the stored rows are matched to records by
// key, in order, and each record left over is resolved as a duplicate as
// on the per-row path; a key held by an acked row awaiting compaction
// (stale) undoes the chunk and stores it row by row, so that seqs keep
// the records' order.
func (t *txn) insertChunk(o *op, k int, enqAt string, lastSeq *int64) (redo bool, err error) {
	before := *lastSeq
	*lastSeq = -1
	if before < 0 {
		if err = t.queryRow(`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'packets'), 0)`).Scan(&before); err != nil {
			return false, err
		}
	}
	recs := o.recs[o.next : o.next+k]
	args := t.c.chunkArgs[:0]
	args = append(args, enqAt, t.nowMs())
	for i := range recs {
		r := &recs[i]
		args = append(args, r.Key, r.PacketID, r.TS, r.Kind, r.SourceID, r.Payload, r.Meta)
	}
	res, err := t.exec(insertChunkSQL(k), args...)
	clear(args)
	t.c.chunkArgs = args[:0]
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	out := o.res[o.next : o.next+k]
	stored := func(i int, seq int64) {
		out[i] = Result{Seq: seq}
		t.dRows++
		t.dBytes += recs[i].size(enqAt)
		t.newRows = true
	}
	if n == int64(k) {
		last, err := res.LastInsertId()
		if err != nil {
			return false, err
		}
		if last == before+int64(k) {
			for i := range recs {
				stored(i, before+1+int64(i))
			}
			*lastSeq = last
			o.next += k
			return false, nil
		}
	}
	// Some rows were not stored (or seqs are not the expected run): find
	// which records the new rows belong to.
	type row struct {
		seq int64
		key string
	}
	var got []row
	if n > 0 {
		rows, err := t.query(`SELECT seq, idempotency_key FROM packets WHERE seq > ? ORDER BY seq`, before)
		if err != nil {
			return false, err
		}
		for rows.Next() {
			var r row
			var key sql.NullString
			if err := rows.Scan(&r.seq, &key); err != nil {
				rows.Close()
				return false, err
			}
			r.key = key.String
			got = append(got, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
	}
	var left []int // records not stored, to resolve as duplicates
	j := 0
	for i := range recs {
		if j < len(got) && got[j].key == recs[i].Key {
			out[i] = Result{Seq: got[j].seq}
			j++
			continue
		}
		left = append(left, i)
	}
	if j != len(got) || int64(j) != n {
		return false, fmt.Errorf("stored %d rows of %d, matched %d of %d new rows to records", n, k, j, len(got))
	}
	for _, i := range left {
		r := &recs[i]
		dup, found, stale, err := t.existing(r)
		if err != nil {
			return false, err
		}
		switch {
		case stale:
			// Undo the chunk (its rows are not counted yet), make the
			// key free, store the records one by one in order.
			if _, err := t.exec(`DELETE FROM packets WHERE seq > ?`, before); err != nil {
				return false, err
			}
			clear(out)
			if err := t.compact(); err != nil {
				return false, err
			}
			return true, nil
		case found:
			out[i] = dup
		default:
			seq, ok, err := t.dedupHit(r)
			if err != nil {
				return false, err
			}
			if !ok {
				return false, fmt.Errorf("idempotency row not found after conflict (key=%s packet_id=%s)", r.Key, r.PacketID)
			}
			out[i] = Result{Seq: seq, Duplicate: true}
		}
	}
	for i := range recs {
		if !out[i].Duplicate {
			stored(i, out[i].Seq)
		}
	}
	o.next += k
	return false, nil
}

// dedupHit looks r's key up among the keys of acked rows.
func (t *txn) dedupHit(r *Record) (int64, bool, error) {
	var seq int64
	err := t.queryRow(`SELECT seq FROM schnitzel_queue_dedup WHERE key = ? AND until > ?`, r.Key, t.nowMs()).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return seq, err == nil, err
}

// enqueue stores o's remaining records, as many as the bounds allow.
func (t *txn) enqueue(o *op) error {
	h := o.h
	opts := h.opts
	if o.res == nil {
		o.res = make([]Result, len(o.recs))
	}
	t.committedOps = append(t.committedOps, o)
	bounded := opts.MaxRows > 0 || opts.MaxBytes > 0
	if bounded && (t.c.depthStale.Load() || (opts.MaxBytes > 0 && !t.c.bytesKnown)) && !t.recounted {
		if err := t.recount(opts.MaxBytes > 0); err != nil {
			return err
		}
	}
	enqAt := packet.FormatTS(t.now)
	perRowUntil := 0     // records before this index take the per-row path
	lastSeq := int64(-1) // the packets AUTOINCREMENT counter when known
	for o.next < len(o.recs) {
		if o.next >= perRowUntil {
			if k, ok := t.chunkFits(o, enqAt, bounded); ok {
				redo, err := t.insertChunk(o, k, enqAt, &lastSeq)
				if err != nil {
					return err
				}
				if redo {
					perRowUntil = o.next + k
				}
				continue
			}
		}
		lastSeq = -1 // the per-row path moves it
		r := &o.recs[o.next]
		size := r.size(enqAt)
		if bounded {
			rows, bytes := t.depth()
			over := func() bool {
				return (opts.MaxRows > 0 && rows+1 > opts.MaxRows) || (opts.MaxBytes > 0 && bytes+size > opts.MaxBytes)
			}
			if over() && t.c.pending+t.dPending > 0 {
				// Acked rows still take bytes: delete them first.
				if err := t.compact(); err != nil {
					return err
				}
				rows, bytes = t.depth()
			}
			if over() {
				// A duplicate needs no room.
				if seq, ok, err := t.dedupHit(r); err != nil {
					return err
				} else if ok {
					o.res[o.next] = Result{Seq: seq, Duplicate: true}
					o.next++
					continue
				}
				if res, found, _, err := t.existing(r); err != nil {
					return err
				} else if found {
					o.res[o.next] = res
					o.next++
					continue
				}
				if opts.MaxBytes > 0 && size > opts.MaxBytes {
					o.err = &Error{Path: h.path, Op: "enqueue", Kind: ErrTooLarge,
						Err: fmt.Errorf("record %d of the batch (packet_id=%s) is %d bytes, max_bytes is %d", o.next, r.PacketID, size, opts.MaxBytes)}
					return nil
				}
				if opts.Overflow != OverflowDropOldest {
					o.blocked = true
					return nil
				}
				for over() {
					dropped, err := t.dropOldest()
					if err != nil {
						return err
					}
					if !dropped {
						break
					}
					h.dropped.Add(1)
					rows, bytes = t.depth()
				}
			}
		}
		res, err := t.exec(insertSQL, enqAt, r.Key, r.PacketID, r.TS, r.Kind, r.SourceID, r.Payload, r.Meta, t.nowMs())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			dup, found, stale, err := t.existing(r)
			if err != nil {
				return err
			}
			if stale {
				// The key belongs to an acked row awaiting compaction
				// whose dedup window is over (or off): compact, then store.
				if err := t.compact(); err != nil {
					return err
				}
				if res, err = t.exec(insertSQL, enqAt, r.Key, r.PacketID, r.TS, r.Kind, r.SourceID, r.Payload, r.Meta, t.nowMs()); err != nil {
					return err
				}
				if n, err = res.RowsAffected(); err != nil {
					return err
				}
			} else if found {
				o.res[o.next] = dup
			} else if seq, ok, err := t.dedupHit(r); err != nil {
				return err
			} else if ok {
				o.res[o.next] = Result{Seq: seq, Duplicate: true}
			} else {
				return fmt.Errorf("idempotency row not found after conflict (key=%s packet_id=%s)", r.Key, r.PacketID)
			}
		}
		if n == 1 {
			seq, err := res.LastInsertId()
			if err != nil {
				return err
			}
			o.res[o.next] = Result{Seq: seq}
			t.dRows++
			t.dBytes += size
			t.newRows = true
		}
		o.next++
	}
	return nil
}

// existing looks up a queued row holding r's key. stale reports an acked
// row awaiting compaction whose key is no longer remembered.
func (t *txn) existing(r *Record) (res Result, found, stale bool, err error) {
	var seq int64
	var payload string
	var acked int
	var until sql.NullInt64
	err = t.queryRow(`SELECT p.seq, p.payload_json, COALESCE(s.acked, 0), s.acked_until FROM packets p LEFT JOIN schnitzel_queue_state s ON s.seq = p.seq WHERE p.idempotency_key = ?`, r.Key).
		Scan(&seq, &payload, &acked, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, false, false, nil
	}
	if err != nil {
		return Result{}, false, false, err
	}
	if acked == 1 && (!until.Valid || until.Int64 <= t.nowMs()) {
		return Result{}, false, true, nil
	}
	return Result{Seq: seq, Duplicate: true, Conflict: payload != r.Payload}, true, false, nil
}

// dropOldest deletes the oldest queued row.
func (t *txn) dropOldest() (bool, error) {
	var seq, size int64
	err := t.queryRow(`SELECT seq, `+sizeSQL+` FROM packets ORDER BY seq LIMIT 1`).Scan(&seq, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := t.exec(`DELETE FROM packets WHERE seq = ?`, seq); err != nil {
		return false, err
	}
	if _, err := t.exec(`DELETE FROM schnitzel_queue_state WHERE seq = ?`, seq); err != nil {
		return false, err
	}
	t.settle(seq)
	t.dRows--
	t.dBytes -= size
	return true, nil
}

// leaseSQL finds available rows. It reads no row contents: the caller
// loads them (Queue.Load) outside the writer goroutine.
const leaseSQL = `SELECT p.seq, COALESCE(s.attempts, 0), s.lease_until, COALESCE(s.last_error, ''), s.seq IS NULL, COALESCE(s.handed, 0) > 0
FROM packets p LEFT JOIN schnitzel_queue_state s ON s.seq = p.seq
WHERE p.seq >= ?3 AND (s.seq IS NULL OR (s.acked = 0 AND (s.lease_until IS NULL OR s.lease_until <= ?1) AND s.not_before <= ?1))
ORDER BY p.seq LIMIT ?2`

type rowData struct {
	seq        int64
	attempts   int
	leaseUntil sql.NullInt64
	lastErr    string
	fresh      bool // no state row yet
	handed     bool // emitted by its last owner (handed > 0: when)
}

// leaseChunk is how many rows one lease query reads.
const leaseChunk = 1024

// lease hands up to n available rows to owner for d. The messages carry
// Seq and Attempt only: Queue.Load reads the rows.
func (t *txn) lease(h *Queue, n int, d time.Duration) ([]Message, error) {
	// Sized for the rows there probably are, so a big lease does not
	// regrow it many times.
	out := make([]Message, 0, max(0, min(int64(n), t.c.rows.Load()+t.dRows, 1<<20)))
	until := t.now.Add(d).UnixMilli()
	from := t.c.floor
	batch := make([]rowData, 0, min(n, leaseChunk))
	var fresh []byte // JSON array of never-leased seqs: one INSERT for all of them
	for len(out) < n {
		limit := min(n-len(out), leaseChunk)
		rows, err := t.query(leaseSQL, t.nowMs(), limit, from)
		if err != nil {
			return nil, err
		}
		batch = batch[:0]
		for rows.Next() {
			batch = append(batch, rowData{})
			r := &batch[len(batch)-1]
			if err := rows.Scan(&r.seq, &r.attempts, &r.leaseUntil, &r.lastErr, &r.fresh, &r.handed); err != nil {
				rows.Close()
				return nil, err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		// Every row below the last one examined is now leased, acked or
		// otherwise unavailable: the next lease starts there instead of
		// stepping over acked rows awaiting compaction again.
		from = batch[len(batch)-1].seq + 1
		t.floor = from
		fresh = fresh[:0]
		for i := range batch {
			r := &batch[i]
			if r.leaseUntil.Valid && r.handed {
				// Its reader emitted it and then neither acked, nacked,
				// released nor renewed it in time: it died (or hung)
				// while delivering it. That is a failed attempt. A row
				// only read ahead is not charged.
				r.attempts++
				r.lastErr = fmt.Sprintf("lease expired at %s without ack", time.UnixMilli(r.leaseUntil.Int64).UTC().Format(time.RFC3339))
			}
			if r.attempts >= h.opts.MaxAttempts {
				if err := t.kill(r.seq, r.attempts, fmt.Sprintf("gave up after %d failed attempts; last: %s", r.attempts, r.lastErr)); err != nil {
					return nil, err
				}
				continue
			}
			if r.fresh {
				fresh = appendSeq(fresh, r.seq)
			} else if _, err := t.exec(`UPDATE schnitzel_queue_state SET attempts = ?, lease_until = ?, lease_owner = ?, last_error = NULLIF(?, ''), handed = 0 WHERE seq = ?`,
				r.attempts, until, h.owner, r.lastErr, r.seq); err != nil {
				return nil, err
			}
			t.heldOps = append(t.heldOps, heldOp{seq: r.seq, h: h})
			out = append(out, Message{Seq: r.seq, Attempt: r.attempts + 1})
		}
		if len(fresh) > 0 {
			fresh = append(fresh, ']')
			if _, err := t.exec(`INSERT INTO schnitzel_queue_state (seq, attempts, lease_until, lease_owner, not_before) SELECT value, 0, ?, ?, 0 FROM json_each(?)`,
				until, h.owner, string(fresh)); err != nil {
				return nil, err
			}
		}
		if len(batch) < limit {
			break // no more available rows
		}
	}
	return out, nil
}

// loadSQL reads the rows of a JSON array of seqs, in its order.
const loadSQL = `SELECT p.seq, p.enqueued_at, COALESCE(p.idempotency_key, ''), p.packet_id, p.ts, p.kind, p.source_id, p.payload_json, p.meta_json
FROM json_each(?) AS j CROSS JOIN packets AS p ON p.seq = j.value`

// bury moves a leased row that cannot be delivered (its JSON does not
// decode) to the dead-letter table, unless it is no longer leased by
// owner.
func (t *txn) bury(owner string, m Message, reason string) error {
	var leased int
	if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM schnitzel_queue_state WHERE seq = ? AND lease_owner = ? AND acked = 0)`, m.Seq, owner).Scan(&leased); err != nil {
		return err
	}
	if leased == 0 {
		return nil
	}
	return t.kill(m.Seq, m.Attempt-1, reason)
}

// kill moves a queued row to the dead-letter table.
func (t *txn) kill(seq int64, attempts int, reason string) error {
	if _, err := t.exec(`INSERT OR REPLACE INTO schnitzel_queue_dead (seq, enqueued_at, idempotency_key, packet_id, ts, kind, source_id, payload_json, meta_json, attempts, last_error, dead_at)
SELECT seq, enqueued_at, idempotency_key, packet_id, ts, kind, source_id, payload_json, meta_json, ?, ?, ? FROM packets WHERE seq = ?`,
		attempts, reason, t.nowMs(), seq); err != nil {
		return err
	}
	var size int64
	err := t.queryRow(`DELETE FROM packets WHERE seq = ? RETURNING `+sizeSQL, seq).Scan(&size)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if err == nil {
		t.dRows--
		t.dBytes -= size
	}
	_, err = t.exec(`DELETE FROM schnitzel_queue_state WHERE seq = ?`, seq)
	t.settle(seq)
	t.deaths = append(t.deaths, death{h: t.h, seq: seq, reason: reason})
	return err
}

// AckStatus is the outcome of acking or nacking one row.
type AckStatus int

// Outcomes.
const (
	Acked   AckStatus = iota // the row was deleted (ack) or scheduled for retry (nack)
	Missing                  // no such queued row: acked before, dropped, purged or dead
	Foreign                  // the reference names another queue file
	Invalid                  // seq <= 0
	Dead                     // nack: the row ran out of attempts and is now a dead letter
)

func (s AckStatus) String() string {
	return [...]string{"acked", "missing", "foreign", "invalid", "dead"}[s]
}

// Ref names a row: its seq and, when known, the id of the queue it came
// from (carried in the durable meta block).
type Ref struct {
	Seq     int64
	QueueID string
}

func (t *txn) check(r Ref) (AckStatus, bool) {
	if r.QueueID != "" && r.QueueID != t.c.id {
		return Foreign, false
	}
	if r.Seq <= 0 {
		return Invalid, false
	}
	return Acked, true
}

// ack marks rows acknowledged: committed, hidden from readers, counted
// out of the depth. compact deletes them later in bulk.
func (t *txn) ack(h *Queue, refs []Ref, out []AckStatus) error {
	var until any // NULL: key not remembered
	if h.opts.DedupWindow > 0 {
		until = t.now.Add(h.opts.DedupWindow).UnixMilli()
	}
	// One statement for the whole batch: per-row statements cost more
	// than the b-tree work they do.
	var seqs []byte
	for i, r := range refs {
		st, ok := t.check(r)
		out[i] = st
		if ok {
			seqs = appendSeq(seqs, r.Seq)
		}
	}
	if seqs == nil {
		return nil
	}
	rows, err := t.query(`INSERT INTO schnitzel_queue_state (seq, attempts, acked, acked_until)
SELECT p.seq, 0, 1, ?1 FROM json_each(?2) AS j CROSS JOIN packets AS p ON p.seq = j.value WHERE true
ON CONFLICT(seq) DO UPDATE SET acked = 1, acked_until = ?1, lease_until = NULL, lease_owner = NULL WHERE acked = 0
RETURNING seq`, until, string(append(seqs, ']')))
	if err != nil {
		return err
	}
	done := map[int64]bool{}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		done[s] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i, r := range refs {
		if out[i] != Acked {
			continue
		}
		if done[r.Seq] {
			delete(done, r.Seq) // a second ref to the same row finds it acked
			t.settle(r.Seq)
			t.dRows--
			t.dPending++
			continue
		}
		out[i] = Missing
	}
	return nil
}

// appendSeq adds n to a JSON array under construction ("[1,2").
func appendSeq(b []byte, n int64) []byte {
	if len(b) == 0 {
		b = append(b, '[')
	} else {
		b = append(b, ',')
	}
	return strconv.AppendInt(b, n, 10)
}

// compactEvery is how many acked rows wait before they are deleted in one
// transaction (sooner when the writer is idle, or at close).
const compactEvery = 1 << 20

// untilSpread bounds how much longer than its dedup window compaction may
// remember a key (see compact).
const untilSpread = time.Second

// compactChunk is how many acked rows one background compaction deletes
// in one transaction: a backlog of acked rows (a restart after a crash
// left 600k) is deleted in steps between other work, instead of holding
// the writer, and so the first delivery, for seconds.
const compactChunk = 2048

// compactSome deletes up to compactChunk acked rows, oldest first (all of
// them at once when every row is acked: a cheap truncate).
func (t *txn) compactSome() error {
	p := t.c.pending + t.dPending
	if p <= 0 {
		return nil
	}
	if p <= compactChunk || (!t.c.depthStale.Load() && t.c.rows.Load()+t.dRows == 0) {
		return t.compact() // small, or everything is acked: a cheap truncate
	}
	var seqs []byte
	rows, err := t.query(`SELECT seq FROM schnitzel_queue_state INDEXED BY idx_schnitzel_queue_state_acked WHERE acked = 1 ORDER BY seq LIMIT ?`, compactChunk)
	if err != nil {
		return err
	}
	n := int64(0)
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		seqs = appendSeq(seqs, s)
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		t.dPending = -t.c.pending
		return nil
	}
	list := string(append(seqs, ']'))
	if _, err := t.exec(`INSERT OR REPLACE INTO schnitzel_queue_dedup (key, seq, until)
SELECT p.idempotency_key, p.seq, s.acked_until FROM json_each(?1) AS j CROSS JOIN schnitzel_queue_state s ON s.seq = j.value CROSS JOIN packets p ON p.seq = s.seq
WHERE s.acked_until IS NOT NULL AND p.idempotency_key IS NOT NULL ORDER BY p.idempotency_key`, list); err != nil {
		return err
	}
	if t.c.bytesKnown {
		var size int64
		if err := t.queryRow(`SELECT COALESCE(SUM(`+sizeSQL+`),0) FROM packets WHERE seq IN (SELECT value FROM json_each(?))`, list).Scan(&size); err != nil {
			return err
		}
		t.dBytes -= size
	}
	res, err := t.exec(`DELETE FROM packets WHERE seq IN (SELECT value FROM json_each(?))`, list)
	if err != nil {
		return err
	}
	_ = res
	if _, err := t.exec(`DELETE FROM schnitzel_queue_state WHERE seq IN (SELECT value FROM json_each(?))`, list); err != nil {
		return err
	}
	t.dPending -= n
	return nil
}

// compact deletes acked rows, remembering their keys for the dedup window.
func (t *txn) compact() error {
	if t.c.pending+t.dPending <= 0 {
		return nil
	}
	all, err := t.allAcked()
	if err != nil {
		return err
	}
	remember := `INSERT OR REPLACE INTO schnitzel_queue_dedup (key, seq, until)
SELECT p.idempotency_key, p.seq, s.acked_until FROM schnitzel_queue_state s JOIN packets p ON p.seq = s.seq
WHERE s.acked = 1 AND s.acked_until IS NOT NULL AND p.idempotency_key IS NOT NULL
ORDER BY p.idempotency_key` // key order: each b-tree page is filled once, not revisited per key
	var args []any
	if all {
		// Every row is acked: the key index lists them in key order, so
		// reading it saves sorting them.
		remember = `INSERT OR REPLACE INTO schnitzel_queue_dedup (key, seq, until)
SELECT p.idempotency_key, p.seq, s.acked_until FROM packets p INDEXED BY idx_packets_idempotency CROSS JOIN schnitzel_queue_state s ON s.seq = p.seq
WHERE s.acked = 1 AND s.acked_until IS NOT NULL AND p.idempotency_key IS NOT NULL
ORDER BY p.idempotency_key`
		// When the rows were acked within a moment of each other, each
		// key is remembered until the latest of their times: at most
		// untilSpread longer than its own window, and no state row is
		// looked up per key.
		var lo, hi sql.NullInt64
		var unremembered int64
		if err := t.queryRow(`SELECT min(acked_until), max(acked_until), count(*) - count(acked_until) FROM schnitzel_queue_state WHERE acked = 1`).Scan(&lo, &hi, &unremembered); err != nil {
			return err
		}
		if unremembered == 0 && lo.Valid && hi.Int64-lo.Int64 <= untilSpread.Milliseconds() {
			remember = `INSERT OR REPLACE INTO schnitzel_queue_dedup (key, seq, until)
SELECT idempotency_key, seq, ? FROM packets INDEXED BY idx_packets_idempotency
WHERE idempotency_key IS NOT NULL ORDER BY idempotency_key`
			args = append(args, hi.Int64)
		}
	}
	if _, err := t.exec(remember, args...); err != nil {
		return err
	}
	if t.c.bytesKnown {
		var size int64
		if err := t.queryRow(`SELECT COALESCE(SUM(` + sizeSQL + `),0) FROM packets WHERE seq IN (SELECT seq FROM schnitzel_queue_state WHERE acked = 1)`).Scan(&size); err != nil {
			return err
		}
		t.dBytes -= size
	}
	if all {
		// Everything is acked (a drained queue): unconditional DELETEs
		// let SQLite drop whole pages instead of unlinking every index
		// entry. AUTOINCREMENT still never reuses a seq. The state rows
		// left are those of acked rows and orphans.
		if _, err := t.exec(`DELETE FROM packets`); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM schnitzel_queue_state`); err != nil {
			return err
		}
	} else {
		if _, err := t.exec(`DELETE FROM packets WHERE seq IN (SELECT seq FROM schnitzel_queue_state WHERE acked = 1)`); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM schnitzel_queue_state WHERE acked = 1`); err != nil {
			return err
		}
	}
	t.dPending = -t.c.pending
	return nil
}

// allAcked reports whether every packets row is acked (awaiting
// compaction). When this process's count says so and no other connection
// wrote since it was taken, a row count confirms it cheaply; otherwise
// every row is looked at.
func (t *txn) allAcked() (bool, error) {
	c := t.c
	if !c.depthStale.Load() && c.rows.Load()+t.dRows == 0 {
		var n int64
		if err := t.queryRow(`SELECT COUNT(*) FROM packets`).Scan(&n); err != nil {
			return false, err
		}
		if n == c.pending+t.dPending {
			return true, nil
		}
	}
	var live int
	if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM packets p LEFT JOIN schnitzel_queue_state s ON s.seq = p.seq WHERE COALESCE(s.acked, 0) = 0)`).Scan(&live); err != nil {
		return false, err
	}
	return live == 0, nil
}

func (t *txn) nack(h *Queue, r Ref, reason string, permanent bool) (AckStatus, error) {
	st, ok := t.check(r)
	if !ok {
		return st, nil
	}
	var attempts int
	err := t.queryRow(`SELECT COALESCE(s.attempts, 0) FROM packets p LEFT JOIN schnitzel_queue_state s ON s.seq = p.seq WHERE p.seq = ? AND COALESCE(s.acked, 0) = 0`, r.Seq).Scan(&attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return Missing, nil
	}
	if err != nil {
		return 0, err
	}
	attempts++
	if permanent {
		return Dead, t.kill(r.Seq, attempts, "permanent failure (a retry cannot fix it): "+reason)
	}
	if attempts >= h.opts.MaxAttempts {
		return Dead, t.kill(r.Seq, attempts, fmt.Sprintf("gave up after %d failed attempts; last: %s", attempts, reason))
	}
	delay := h.opts.RetryBackoff
	for i := 1; i < attempts && delay < h.opts.RetryBackoffMax; i++ {
		delay *= 2
	}
	delay = min(delay, h.opts.RetryBackoffMax)
	t.lowerFloor = true
	_, err = t.exec(`INSERT INTO schnitzel_queue_state (seq, attempts, lease_until, lease_owner, not_before, last_error) VALUES (?, ?, NULL, NULL, ?, ?)
ON CONFLICT(seq) DO UPDATE SET attempts = excluded.attempts, lease_until = NULL, lease_owner = NULL, not_before = excluded.not_before, last_error = excluded.last_error, handed = 0`,
		r.Seq, attempts, t.now.Add(delay).UnixMilli(), reason)
	t.settle(r.Seq)
	return Acked, err
}

// release gives leased rows back without counting an attempt.
func (t *txn) release(owner string, seqs []int64) error {
	for _, s := range seqs {
		if _, err := t.exec(`UPDATE schnitzel_queue_state SET lease_until = NULL, lease_owner = NULL, handed = 0 WHERE seq = ? AND lease_owner = ?`, s, owner); err != nil {
			return err
		}
		if h := t.c.held[s]; h != nil && h.owner == owner {
			t.settle(s)
		}
	}
	t.newRows = t.newRows || len(seqs) > 0
	t.lowerFloor = true
	return nil
}

func (t *txn) releaseOwner(h *Queue) error {
	if !h.owned.Load() {
		return nil // never leased
	}
	res, err := t.exec(`UPDATE schnitzel_queue_state SET lease_until = NULL, lease_owner = NULL, handed = 0 WHERE lease_owner = ?`, h.owner)
	if err != nil {
		return err
	}
	for seq, o := range t.c.held {
		if o == h {
			t.settle(seq)
		}
	}
	if n, _ := res.RowsAffected(); n > 0 {
		t.newRows = true
		t.lowerFloor = true
	}
	return nil
}
