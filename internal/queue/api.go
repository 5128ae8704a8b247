package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/redact"
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
				if err := t.bury(q.owner, d.m, d.reason); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return out, wrap(q.path, "load", err)
}

// Ack deletes acknowledged rows; their keys stay known for the dedup
// window. A ref naming another queue id is refused (Foreign), not applied.
func (q *Queue) Ack(ctx context.Context, refs ...Ref) ([]AckStatus, error) {
	out := make([]AckStatus, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	err := q.do(ctx, true, func(t *txn) error { return t.ack(q, refs, out) })
	return out, wrap(q.path, "ack", err)
}

// AckPending is an ack handed to the writer that may not be committed yet.
type AckPending struct {
	q   *Queue
	o   *op
	out []AckStatus
}

// AckAsync is Ack without waiting for the commit: a caller that keeps
// several acks in flight lets the writer commit them together. Until Wait
// returns the rows count as unacked (a crash delivers them again).
func (q *Queue) AckAsync(refs []Ref) (*AckPending, error) {
	if q.closed.Load() {
		return nil, &Error{Path: q.path, Op: "ack", Kind: ErrClosed}
	}
	p := &AckPending{q: q, out: make([]AckStatus, len(refs))}
	p.o = &op{ctx: context.Background(), h: q, write: true, done: make(chan struct{}),
		fn: func(t *txn) error { return t.ack(q, refs, p.out) }}
	if err := q.c.send(p.o); err != nil {
		return nil, wrap(q.path, "ack", err)
	}
	return p, nil
}

// Done is closed once the ack is committed or failed.
func (p *AckPending) Done() <-chan struct{} { return p.o.done }

// Wait blocks until the ack is committed (or failed).
func (p *AckPending) Wait() ([]AckStatus, error) {
	<-p.o.done
	return p.out, wrap(p.q.path, "ack", p.o.err)
}

// Nack records a failed delivery of a row: it is offered again after an
// exponential backoff, or moved to the dead-letter table with reason
// after MaxAttempts failures, or at once when reason is
// packet.Permanent (a retry cannot fix it).
func (q *Queue) Nack(ctx context.Context, ref Ref, reason error) (AckStatus, error) {
	msg := "nacked"
	if reason != nil {
		// The reason is stored and shown by `queue dead`: no secret in it.
		msg = redact.Text(reason.Error())
	}
	var st AckStatus
	err := q.do(ctx, true, func(t *txn) error {
		var err error
		st, err = t.nack(q, ref, msg, packet.IsPermanent(reason))
		return err
	})
	return st, wrap(q.path, "nack", err)
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
