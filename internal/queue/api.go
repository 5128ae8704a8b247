package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
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
	if n <= 0 {
		return nil, nil
	}
	if d <= 0 {
		return nil, &Error{Path: q.path, Op: "lease", Err: errors.New("lease duration must be > 0")}
	}
	var out []Message
	err := q.do(ctx, true, func(t *txn) error {
		var err error
		out, err = t.lease(q, n, d)
		return err
	})
	return out, wrap(q.path, "lease", err)
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
// after MaxAttempts failures.
func (q *Queue) Nack(ctx context.Context, ref Ref, reason error) (AckStatus, error) {
	msg := "nacked"
	if reason != nil {
		msg = reason.Error()
	}
	var st AckStatus
	err := q.do(ctx, true, func(t *txn) error {
		var err error
		st, err = t.nack(q, ref, msg)
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
