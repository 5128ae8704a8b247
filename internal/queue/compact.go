// Compaction: deleting acked rows in bulk while remembering their keys for
// the dedup window, and when the writer goroutine does it.

package queue

import (
	"context"
	"database/sql"
	"time"
)

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
