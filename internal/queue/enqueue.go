// Enqueue: storing records (multi-row chunks, or row by row under bounds),
// the overflow policies, and idempotency-key conflicts (keyHolder).

package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Enqueue stores one record; see EnqueueBatch.
func (q *Queue) Enqueue(ctx context.Context, r Record) (Result, error) {
	res, err := q.EnqueueBatch(ctx, []Record{r})
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// EnqueueBatch stores records in order and returns after the
// transaction(s) holding them committed. Records waiting at the same time
// (from this call, other goroutines and other handles on the file) share
// one transaction. A record whose key is already queued, or was acked
// within the dedup window, is not stored again (Result.Duplicate).
//
// At a bound, OverflowBlock waits for room (rows committed before the wait
// stay committed); if ctx ends first the error says how many were
// committed. A record without a key gets its packet id as key.
func (q *Queue) EnqueueBatch(ctx context.Context, recs []Record) ([]Result, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	for i := range recs {
		if recs[i].Key == "" {
			recs[i].Key = recs[i].PacketID
		}
		if recs[i].Key == "" {
			return nil, &Error{Path: q.path, Op: "enqueue", Kind: ErrEmptyKey, Err: fmt.Errorf("record %d has neither key nor packet_id", i)}
		}
	}
	if q.closed.Load() {
		return nil, &Error{Path: q.path, Op: "enqueue", Kind: ErrClosed}
	}
	o := &op{ctx: ctx, h: q, write: true, recs: recs, done: make(chan struct{})}
	err := q.c.submit(o)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return o.res, &Error{Path: q.path, Op: "enqueue", Err: err}
		}
		return o.res, wrap(q.path, "enqueue", err)
	}
	return o.res, nil
}

// Pending is an enqueue handed to the writer that may not be committed
// yet.
type Pending struct {
	q *Queue
	o *op
}

// EnqueueAsync hands records to the writer and returns at once; Wait says
// when (and whether) they are committed. A caller that keeps several
// batches in flight lets the writer commit them together: far fewer,
// larger transactions, which matters because every commit rewrites the
// index pages its random keys touched. The records must not be changed
// until Wait returns.
func (q *Queue) EnqueueAsync(recs []Record) (*Pending, error) {
	if q.closed.Load() {
		return nil, &Error{Path: q.path, Op: "enqueue", Kind: ErrClosed}
	}
	for i := range recs {
		if recs[i].Key == "" {
			recs[i].Key = recs[i].PacketID
		}
		if recs[i].Key == "" {
			return nil, &Error{Path: q.path, Op: "enqueue", Kind: ErrEmptyKey, Err: fmt.Errorf("record %d has neither key nor packet_id", i)}
		}
	}
	o := &op{ctx: context.Background(), h: q, write: true, recs: recs, done: make(chan struct{})}
	if err := q.c.send(o); err != nil {
		return nil, wrap(q.path, "enqueue", err)
	}
	return &Pending{q: q, o: o}, nil
}

// Done is closed once the records are committed or failed.
func (p *Pending) Done() <-chan struct{} { return p.o.done }

// Wait blocks until the records are committed (or failed) and returns
// their results.
func (p *Pending) Wait() ([]Result, error) {
	<-p.o.done
	if p.o.err != nil {
		return p.o.res, wrap(p.q.path, "enqueue", p.o.err)
	}
	return p.o.res, nil
}

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
		dup, holder, err := t.keyHolder(r)
		if err != nil {
			return false, err
		}
		switch holder {
		case keyStale:
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
		case keyQueued, keyRemembered:
			out[i] = dup
		default:
			return false, errNoHolder(r)
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
				if dup, holder, err := t.keyHolder(r); err != nil {
					return err
				} else if holder == keyQueued || holder == keyRemembered {
					o.res[o.next] = dup
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
			dup, holder, err := t.keyHolder(r)
			if err != nil {
				return err
			}
			switch holder {
			case keyStale:
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
			case keyQueued, keyRemembered:
				o.res[o.next] = dup
			default:
				return errNoHolder(r)
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

// keyHolder says what holds an idempotency key when a record cannot be
// stored as it is.
type keyHolder int

const (
	keyFree       keyHolder = iota // nothing: the record needs room and is stored
	keyQueued                      // a queued row: the record is its duplicate (Conflict if the payload differs)
	keyRemembered                  // an acked, compacted row, within the dedup window: a duplicate
	keyStale                       // an acked row awaiting compaction, window over (or off): compact, then store
)

// keyHolder resolves r's key: the one conflict resolution of every
// enqueue path (a chunk's leftovers, a row refused by the INSERT, a row
// that would not fit). dup is the duplicate's result for keyQueued and
// keyRemembered. A queued row is looked at first: it is the row that holds
// the key in the packets table's unique index.
func (t *txn) keyHolder(r *Record) (dup Result, holder keyHolder, err error) {
	var seq int64
	var payload string
	var acked int
	var until sql.NullInt64
	err = t.queryRow(`SELECT p.seq, p.payload_json, COALESCE(s.acked, 0), s.acked_until FROM packets p LEFT JOIN schnitzel_queue_state s ON s.seq = p.seq WHERE p.idempotency_key = ?`, r.Key).
		Scan(&seq, &payload, &acked, &until)
	switch {
	case err == nil:
		if acked == 1 && (!until.Valid || until.Int64 <= t.nowMs()) {
			return Result{}, keyStale, nil
		}
		return Result{Seq: seq, Duplicate: true, Conflict: payload != r.Payload}, keyQueued, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Result{}, keyFree, err
	}
	err = t.queryRow(`SELECT seq FROM schnitzel_queue_dedup WHERE key = ? AND until > ?`, r.Key, t.nowMs()).Scan(&seq)
	switch {
	case err == nil:
		return Result{Seq: seq, Duplicate: true}, keyRemembered, nil
	case errors.Is(err, sql.ErrNoRows):
		return Result{}, keyFree, nil
	}
	return Result{}, keyFree, err
}

// errNoHolder reports an INSERT that refused r although nothing holds its key.
func errNoHolder(r *Record) error {
	return fmt.Errorf("idempotency row not found after conflict (key=%s packet_id=%s)", r.Key, r.PacketID)
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
