// Ack and Nack: acknowledging rows (deleted later by compaction) and failing
// them (retry with backoff, or dead letter); AckStatus and Ref.

package queue

import (
	"context"
	"database/sql"
	"errors"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/redact"
)

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
// exponential backoff (Retrying), or moved to the dead-letter table with
// reason after MaxAttempts failures, or at once when reason is
// packet.Permanent (a retry cannot fix it) (Dead).
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

// AckStatus is the outcome of acking or nacking one row.
type AckStatus int

// Outcomes.
const (
	Acked    AckStatus = iota // ack: the row is acknowledged (hidden now, deleted by compaction)
	Missing                   // no such queued row: acked before, dropped, purged or dead
	Foreign                   // the reference names another queue file
	Invalid                   // seq <= 0
	Dead                      // nack: the row ran out of attempts (or failed permanently) and is now a dead letter
	Retrying                  // nack: the row is offered again after its retry backoff
)

func (s AckStatus) String() string {
	return [...]string{"acked", "missing", "foreign", "invalid", "dead", "retrying"}[s]
}

// Ref names a row: its seq and, when known, the id of the queue it came
// from (carried in the durable meta block).
type Ref struct {
	Seq     int64
	QueueID string
}

// refRefused says why r cannot name a row of this queue file, if it
// cannot: Foreign or Invalid.
func (t *txn) refRefused(r Ref) (AckStatus, bool) {
	if r.QueueID != "" && r.QueueID != t.c.id {
		return Foreign, true
	}
	if r.Seq <= 0 {
		return Invalid, true
	}
	return 0, false
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
		if st, refused := t.refRefused(r); refused {
			out[i] = st
			continue
		}
		out[i] = Acked
		seqs = appendSeq(seqs, r.Seq)
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

func (t *txn) nack(h *Queue, r Ref, reason string, permanent bool) (AckStatus, error) {
	if st, refused := t.refRefused(r); refused {
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
		return Dead, t.deadLetter(r.Seq, attempts, "permanent failure (a retry cannot fix it): "+reason)
	}
	if attempts >= h.opts.MaxAttempts {
		return Dead, t.deadLetter(r.Seq, attempts, gaveUp(attempts, reason))
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
	return Retrying, err
}
