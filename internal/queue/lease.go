// Lease, Load and Release: handing available rows to a reader, reading
// their contents, and giving leases back without charging an attempt.

package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Lease hands up to n rows to this handle for d: until then no other
// reader (handle or process) gets them. Rows are offered in seq order,
// skipping rows leased by others and rows waiting out a retry backoff.
// Rows that ran out of attempts, or whose JSON does not decode, are moved
// to the dead-letter table instead of being returned.
func (q *Queue) Lease(ctx context.Context, n int, d time.Duration) ([]Message, error) {
	var out []Message
	for len(out) < n {
		want := n - len(out)
		ms, err := q.LeaseUnloaded(ctx, want, d)
		if err != nil {
			return out, err
		}
		got := len(ms)
		loaded, err := q.Load(ctx, ms)
		if err != nil {
			// Not handed out: give them back now rather than at expiry
			// (which would count an attempt).
			_ = q.ReleaseMessages(context.Background(), ms)
			return out, err
		}
		out = append(out, loaded...)
		if got < want {
			break // no more available rows
		}
	}
	return out, nil
}

// LeaseUnloaded is Lease without reading the rows: the messages carry Seq
// and Attempt only, and Load fills in the rest. The writer that leases
// for every handle on the file then does only the bookkeeping, and a
// reader can load and hand on part of its rows while the writer commits
// the acks of earlier ones. Rows that ran out of attempts are moved to
// the dead-letter table instead of being returned.
func (q *Queue) LeaseUnloaded(ctx context.Context, n int, d time.Duration) ([]Message, error) {
	if n <= 0 {
		return nil, nil
	}
	if d <= 0 {
		return nil, &Error{Path: q.path, Op: "lease", Err: errors.New("lease duration must be > 0")}
	}
	if q.leaseDur.Swap(int64(d)) != int64(d) {
		select {
		case q.renewKick <- struct{}{}: // renew at the new pace
		default:
		}
	}
	if err := q.own(ctx); err != nil {
		return nil, err
	}
	var out []Message
	err := q.do(ctx, true, func(t *txn) error {
		var err error
		out, err = t.lease(q, n, d)
		return err
	})
	return out, wrap(q.path, "lease", err)
}

// Load reads the rows of messages leased by LeaseUnloaded (in msgs'
// order, which is seq order) and returns them with EnqueuedAt, Key and
// Packet set, reusing msgs' array. A row whose JSON does not decode is
// moved to the dead-letter table and left out, as is a row that is gone
// (purged, or dropped by drop_oldest). Rows are read on a connection of
// their own, not by the writer goroutine.
func (q *Queue) Load(ctx context.Context, msgs []Message) ([]Message, error) {
	if len(msgs) == 0 {
		return msgs, nil
	}
	if q.closed.Load() {
		return nil, &Error{Path: q.path, Op: "load", Kind: ErrClosed}
	}
	var seqs []byte
	for _, m := range msgs {
		seqs = appendSeq(seqs, m.Seq)
	}
	seqs = append(seqs, ']')
	type dead struct {
		m      Message
		reason string
	}
	var poison []dead
	var gone []int64 // leased rows whose packets row is gone: settle them
	out := msgs[:0]
	i := 0 // msgs[i:] are not matched yet; rows come in msgs' order
	scan := func(rows *sql.Rows) error {
		defer rows.Close()
		var r struct {
			seq                                         int64
			enq, key, pid, ts, kind, src, payload, meta string
		}
		for rows.Next() {
			if err := rows.Scan(&r.seq, &r.enq, &r.key, &r.pid, &r.ts, &r.kind, &r.src, &r.payload, &r.meta); err != nil {
				return err
			}
			for i < len(msgs) && msgs[i].Seq != r.seq {
				gone = append(gone, msgs[i].Seq) // its row is gone
				i++
			}
			if i == len(msgs) {
				return fmt.Errorf("load: row %d out of order", r.seq)
			}
			m := msgs[i]
			i++
			p, err := decodeRow(r.pid, r.ts, r.kind, r.src, r.payload, r.meta)
			if err != nil {
				// A poison row must not fail every drain: park it.
				poison = append(poison, dead{m, "undecodable row: " + err.Error()})
				continue
			}
			m.EnqueuedAt, m.Key, m.Packet = r.enq, r.key, p
			out = append(out, m)
		}
		return rows.Err()
	}
	err := q.c.read(ctx, q, func(db queryer) error {
		rows, err := db.QueryContext(ctx, loadSQL, string(seqs))
		if err != nil {
			return err
		}
		return scan(rows)
	})
	if err != nil {
		return out, wrap(q.path, "load", err)
	}
	// msgs[i:] were not found either (out shares msgs' array: copy first).
	for _, m := range msgs[i:] {
		gone = append(gone, m.Seq)
	}
	if len(gone) > 0 {
		if err := q.Release(ctx, gone...); err != nil {
			return out, err
		}
	}
	if len(poison) > 0 {
		err = q.do(ctx, true, func(t *txn) error {
			for _, d := range poison {
				if err := t.deadLetterUndecodable(q.owner, d.m, d.reason); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return out, wrap(q.path, "load", err)
}

// Release gives rows leased by this handle back at once, without counting
// a failed attempt (e.g. rows read but never emitted).
func (q *Queue) Release(ctx context.Context, seqs ...int64) error {
	if len(seqs) == 0 {
		return nil
	}
	return wrap(q.path, "release", q.do(ctx, true, func(t *txn) error { return t.release(q.owner, seqs) }))
}

// ReleaseMessages is Release for leased messages.
func (q *Queue) ReleaseMessages(ctx context.Context, msgs []Message) error {
	seqs := make([]int64, len(msgs))
	for i, m := range msgs {
		seqs[i] = m.Seq
	}
	return q.Release(ctx, seqs...)
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
				if err := t.deadLetter(r.seq, r.attempts, gaveUp(r.attempts, r.lastErr)); err != nil {
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
