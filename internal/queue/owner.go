package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrConsumerBusy: the consumer name is held by another live process.
var ErrConsumerBusy = errors.New("consumer name is in use by another live process (two live processes cannot share a consumer name)")

// OwnerLeases is what one lease owner holds.
type OwnerLeases struct {
	Owner string `json:"owner"`
	Rows  int64  `json:"rows"`
	// Until is the latest lease expiry of its rows (RFC 3339).
	Until string `json:"until"`
	Alive bool   `json:"alive"` // its lock is held by a live process
}

// SweepReport is what taking back dead owners' rows found.
type SweepReport struct {
	Released  int64         // rows given back without an attempt (never emitted)
	Charged   int64         // rows given back with one attempt charged (emitted when their owner died)
	Dead      int64         // rows that ran out of attempts doing so
	Elsewhere []OwnerLeases // rows leased by other live owners
}

// ElsewhereRows sums the rows of live other owners.
func (r SweepReport) ElsewhereRows() int64 {
	var n int64
	for _, o := range r.Elsewhere {
		n += o.Rows
	}
	return n
}

// Owner returns the handle's lease owner name.
func (q *Queue) Owner() string { return q.owner }

// StartReport returns what the sweep done when this handle took its
// lock found (zero before the first lease of an unnamed handle).
func (q *Queue) StartReport() SweepReport {
	q.ownMu.Lock()
	defer q.ownMu.Unlock()
	return q.sweep
}

// LeasedElsewhere returns how many rows other live owners held at the
// last sweep.
func (q *Queue) LeasedElsewhere() int64 { return q.elsewhere.Load() }

// InFlight returns how many rows this handle holds leased and not yet
// acked, nacked or released (acks by other handles in this process
// count).
func (q *Queue) InFlight() int64 { return q.inflight.Load() }

// WaitSettled blocks until a row this handle holds is acked, nacked or
// released, d passes, or ctx ends.
func (q *Queue) WaitSettled(ctx context.Context, d time.Duration) {
	q.settleMu.Lock()
	ch := q.settled
	q.settleMu.Unlock()
	waitOn(ctx, ch, d)
}

func (q *Queue) notifySettled() {
	q.settleMu.Lock()
	close(q.settled)
	q.settled = make(chan struct{})
	q.settleMu.Unlock()
}

// AckersInProcess reports whether a handle that acks (Options.Acks) is
// open on this file in this process.
func (q *Queue) AckersInProcess() bool { return q.c.ackers.Load() > 0 }

// own takes this handle's lock (once), takes back the rows dead owners
// left leased, and starts the renewer.
func (q *Queue) own(ctx context.Context) error {
	q.ownMu.Lock()
	defer q.ownMu.Unlock()
	if q.lock != nil {
		return nil
	}
	if q.c.readOnly {
		return &Error{Path: q.path, Op: "lease", Kind: ErrReadOnly, Err: errors.New("opened read-only")}
	}
	if q.c.key == ":memory:" {
		q.lock = &ownerLock{} // no other process can see it
	} else {
		l, err := acquireLock(q.c.key, q.owner)
		if errors.Is(err, errLockHeld) {
			msg := fmt.Sprintf("consumer %q", q.owner)
			if pid := lockHolderPID(q.c.key, q.owner); pid > 0 {
				msg += fmt.Sprintf(" is held by pid %d", pid)
			}
			return &Error{Path: q.path, Op: "open", Kind: ErrConsumerBusy,
				Err: fmt.Errorf("%s (lock %s); give this reader its own `consumer` name", msg, lockPath(q.c.key, q.owner))}
		}
		if err != nil {
			return &Error{Path: q.path, Op: "open", Err: err}
		}
		q.lock = l
	}
	var rep SweepReport
	err := q.do(ctx, true, func(t *txn) error {
		var err error
		rep, err = t.sweepDead(q, true)
		return err
	})
	if err != nil {
		q.lock.release(q.opts.Consumer == "")
		q.lock = nil
		return wrap(q.path, "open", err)
	}
	q.owned.Store(true)
	q.sweep = rep
	q.elsewhere.Store(rep.ElsewhereRows())
	q.renewStop, q.renewDone = make(chan struct{}), make(chan struct{})
	go q.renew(q.renewStop, q.renewDone)
	return nil
}

func (q *Queue) stopRenew() {
	q.ownMu.Lock()
	stop, done := q.renewStop, q.renewDone
	q.renewStop, q.renewDone = nil, nil
	q.ownMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// renew keeps this handle's leases from expiring while it is alive
// (every third of the lease), and takes back the rows of owners that
// died meanwhile.
func (q *Queue) renew(stop, done chan struct{}) {
	defer close(done)
	for {
		d := time.Duration(q.leaseDur.Load())
		wait := max(d/3, 10*time.Millisecond)
		if d <= 0 {
			wait = time.Hour // until the first lease says how long
		}
		tick := time.NewTimer(wait)
		select {
		case <-stop:
			tick.Stop()
			return
		case <-q.renewKick:
			tick.Stop()
			continue
		case <-tick.C:
		}
		if d <= 0 {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		var rep SweepReport
		err := q.do(ctx, true, func(t *txn) error {
			if q.inflight.Load() > 0 {
				if _, err := t.exec(`UPDATE schnitzel_queue_state SET lease_until = ? WHERE lease_owner = ? AND acked = 0 AND lease_until IS NOT NULL`,
					t.now.Add(d).UnixMilli(), q.owner); err != nil {
					return err
				}
			}
			var err error
			rep, err = t.sweepDead(q, false)
			return err
		})
		cancel()
		if err == nil {
			q.elsewhere.Store(rep.ElsewhereRows())
		} else if !errors.Is(err, ErrClosed) {
			q.c.log.Debug("queue lease renewal failed; retrying", "path", q.path, "err", err)
		}
	}
}

// sweepDead gives back the rows of lease owners whose lock is free: at
// once, charging an attempt only to rows that were emitted (handed) when
// their owner died. first is the sweep at lock time: rows under this
// handle's own name are then a previous run's.
func (t *txn) sweepDead(h *Queue, first bool) (SweepReport, error) {
	var rep SweepReport
	rows, err := t.query(`SELECT lease_owner, COUNT(*), MAX(lease_until) FROM schnitzel_queue_state WHERE lease_owner IS NOT NULL AND acked = 0 AND lease_until IS NOT NULL GROUP BY lease_owner`)
	if err != nil {
		return rep, err
	}
	type ol struct {
		owner string
		n     int64
		until int64
	}
	var owners []ol
	for rows.Next() {
		var o ol
		if err := rows.Scan(&o.owner, &o.n, &o.until); err != nil {
			rows.Close()
			return rep, err
		}
		owners = append(owners, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, err
	}
	var dead []string
	for _, o := range owners {
		switch {
		case o.owner == h.owner:
			if first {
				dead = append(dead, o.owner)
			}
		case t.c.key == ":memory:":
			// one process: only live handles
		case ownerAlive(t.c.key, o.owner):
			if o.until > t.nowMs() {
				rep.Elsewhere = append(rep.Elsewhere, OwnerLeases{Owner: o.owner, Rows: o.n, Until: msTime(o.until), Alive: true})
			}
		default:
			dead = append(dead, o.owner)
		}
	}
	for _, owner := range dead {
		r, err := t.releaseDead(h, owner)
		if err != nil {
			return rep, err
		}
		rep.Released += r.Released
		rep.Charged += r.Charged
		rep.Dead += r.Dead
	}
	return rep, nil
}

// deathCharge is how many of a dead owner's emitted rows a death is
// charged to: the oldest ones it emitted and did not settle, which are
// the rows a delivering node was working on (the HTTP sink's requests in
// flight). Rows emitted after them were waiting in an inbox: not charged,
// or every kill of a busy forwarder would charge its whole window and a
// few kills would dead-letter healthy rows.
const deathCharge = 64

// releaseDead gives back every unacked row leased by owner, which is not
// alive: the oldest emitted ones (deathCharge) are charged an attempt
// (and dead-lettered when out of attempts), the rest are released
// untouched.
func (t *txn) releaseDead(h *Queue, owner string) (SweepReport, error) {
	var rep SweepReport
	reason := fmt.Sprintf("its reader %q died while delivering it", owner)
	rows, err := t.query(`UPDATE schnitzel_queue_state SET attempts = attempts + 1, lease_until = NULL, lease_owner = NULL, handed = 0, last_error = ?1
WHERE seq IN (SELECT seq FROM schnitzel_queue_state WHERE lease_owner = ?2 AND acked = 0 AND handed > 0 ORDER BY handed, seq LIMIT ?3) RETURNING seq, attempts`,
		reason, owner, deathCharge)
	if err != nil {
		return rep, err
	}
	type sa struct {
		seq      int64
		attempts int
	}
	var out []sa
	for rows.Next() {
		var x sa
		if err := rows.Scan(&x.seq, &x.attempts); err != nil {
			rows.Close()
			return rep, err
		}
		out = append(out, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, err
	}
	res, err := t.exec(`UPDATE schnitzel_queue_state SET lease_until = NULL, lease_owner = NULL, handed = 0 WHERE lease_owner = ? AND acked = 0`, owner)
	if err != nil {
		return rep, err
	}
	rep.Released, _ = res.RowsAffected()
	for _, x := range out {
		rep.Charged++
		if x.attempts >= h.opts.MaxAttempts {
			if err := t.deadLetter(x.seq, x.attempts, gaveUp(x.attempts, reason)); err != nil {
				return rep, err
			}
			rep.Dead++
		}
	}
	if rep.Released+rep.Charged > 0 {
		t.newRows = true
		t.lowerFloor = true
	}
	return rep, nil
}

// MarkHanded records when the rows were emitted to the graph: a death of
// this owner from now on may charge them an attempt (see deathCharge). It
// does not wait for the commit: a crash before it only means the rows are
// not charged.
func (q *Queue) MarkHanded(msgs []Message) {
	if len(msgs) == 0 || q.closed.Load() {
		return
	}
	var seqs []byte
	for _, m := range msgs {
		seqs = appendSeq(seqs, m.Seq)
	}
	seqs = append(seqs, ']')
	o := &op{ctx: context.Background(), h: q, write: true, done: make(chan struct{}),
		fn: func(t *txn) error {
			_, err := t.exec(`UPDATE schnitzel_queue_state SET handed = ? WHERE seq IN (SELECT value FROM json_each(?)) AND lease_owner = ?`, max(1, t.nowMs()), string(seqs), q.owner)
			return err
		}}
	_ = q.c.send(o)
}

// Owners lists the lease owners holding rows, and whether each is alive.
func (q *Queue) Owners(ctx context.Context) ([]OwnerLeases, error) {
	var out []OwnerLeases
	err := q.do(ctx, false, func(t *txn) error {
		rows, err := t.query(`SELECT lease_owner, COUNT(*), MAX(lease_until) FROM schnitzel_queue_state WHERE lease_owner IS NOT NULL AND acked = 0 AND lease_until IS NOT NULL GROUP BY lease_owner ORDER BY lease_owner`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o OwnerLeases
			var until int64
			if err := rows.Scan(&o.Owner, &o.Rows, &until); err != nil {
				return err
			}
			o.Until = msTime(until)
			out = append(out, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(q.path, "owners", err)
	}
	for i := range out {
		out[i].Alive = q.c.key != ":memory:" && ownerAlive(q.c.key, out[i].Owner)
	}
	return out, nil
}

// ReleaseOwners gives back, without charging an attempt, the rows leased
// by the named owner, or (owner "") by every owner that is not alive. A
// live owner's rows are refused unless force.
func (q *Queue) ReleaseOwners(ctx context.Context, owner string, force bool) (int64, error) {
	if owner != "" && !force && ownerAlive(q.c.key, owner) {
		return 0, &Error{Path: q.path, Op: "release", Kind: ErrConsumerBusy,
			Err: fmt.Errorf("consumer %q is alive (pid %d); stop it first", owner, lockHolderPID(q.c.key, owner))}
	}
	var n int64
	err := q.do(ctx, true, func(t *txn) error {
		owners := []string{owner}
		if owner == "" {
			owners = nil
			rows, err := t.query(`SELECT DISTINCT lease_owner FROM schnitzel_queue_state WHERE lease_owner IS NOT NULL AND acked = 0`)
			if err != nil {
				return err
			}
			for rows.Next() {
				var o string
				if err := rows.Scan(&o); err != nil {
					rows.Close()
					return err
				}
				if !ownerAlive(t.c.key, o) {
					owners = append(owners, o)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		for _, o := range owners {
			res, err := t.exec(`UPDATE schnitzel_queue_state SET lease_until = NULL, lease_owner = NULL, handed = 0 WHERE lease_owner = ? AND acked = 0`, o)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		t.newRows, t.lowerFloor = n > 0, n > 0
		return nil
	})
	return n, wrap(q.path, "release", err)
}
