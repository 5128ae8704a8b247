package queue

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strconv"
	"time"
)

// Stats describes a queue file.
type Stats struct {
	Path          string `json:"path"`
	QueueID       string `json:"queue_id"`
	SchemaVersion int    `json:"schema_version"`
	Rows          int64  `json:"rows"`          // queued rows, leased ones included
	AckedPending  int64  `json:"acked_pending"` // acked rows not yet deleted (compaction runs in bulk)
	Bytes         int64  `json:"bytes"`         // stored text of queued rows
	Leased        int64  `json:"leased"`        // rows under an unexpired lease
	Delayed       int64  `json:"delayed"`       // rows waiting out a retry backoff
	Retried       int64  `json:"retried"`       // rows with at least one failed attempt
	Dead          int64  `json:"dead"`          // dead letters
	DedupKeys     int64  `json:"dedup_keys"`    // keys of acked rows still remembered
	MinSeq        int64  `json:"min_seq"`       // 0 when empty
	MaxSeq        int64  `json:"max_seq"`       // 0 when empty
	OldestEnqueue string `json:"oldest_enqueued_at,omitempty"`
	NewestEnqueue string `json:"newest_enqueued_at,omitempty"`
	FileBytes     int64  `json:"file_bytes"`
	WALBytes      int64  `json:"wal_bytes"`
	PageCount     int64  `json:"page_count"`
	FreePages     int64  `json:"free_pages"`
}

// Stats reads the queue's counts. Unlike Depth it always reads the file.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	s := Stats{Path: q.path, QueueID: q.c.id}
	err := q.do(ctx, false, func(t *txn) error {
		now := time.Now().UnixMilli()
		var v string
		// A file only the Python project wrote has no schema version (0).
		if err := t.queryRow(`SELECT value FROM schnitzel_queue_meta WHERE key='schema_version'`).Scan(&v); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		s.SchemaVersion, _ = strconv.Atoi(v)
		var oldest, newest sql.NullString
		const live = `FROM packets p LEFT JOIN schnitzel_queue_state s ON s.seq = p.seq WHERE COALESCE(s.acked, 0) = 0`
		if err := t.queryRow(`SELECT COUNT(*), COALESCE(SUM(`+sizeSQL+`),0), COALESCE(MIN(p.seq),0), COALESCE(MAX(p.seq),0) `+live).
			Scan(&s.Rows, &s.Bytes, &s.MinSeq, &s.MaxSeq); err != nil {
			return err
		}
		if s.Rows > 0 {
			if err := t.queryRow(`SELECT (SELECT enqueued_at FROM packets WHERE seq = ?), (SELECT enqueued_at FROM packets WHERE seq = ?)`, s.MinSeq, s.MaxSeq).Scan(&oldest, &newest); err != nil {
				return err
			}
			s.OldestEnqueue, s.NewestEnqueue = oldest.String, newest.String
		}
		if err := t.queryRow(`SELECT COUNT(*) FROM schnitzel_queue_state s JOIN packets p ON p.seq = s.seq WHERE s.acked = 1`).Scan(&s.AckedPending); err != nil {
			return err
		}
		if err := t.queryRow(`SELECT
  COALESCE(SUM(s.lease_until IS NOT NULL AND s.lease_until > ?1),0),
  COALESCE(SUM(s.lease_until IS NULL AND s.not_before > ?1),0),
  COALESCE(SUM(s.attempts > 0),0)
FROM schnitzel_queue_state s JOIN packets p ON p.seq = s.seq WHERE s.acked = 0`, now).Scan(&s.Leased, &s.Delayed, &s.Retried); err != nil {
			return err
		}
		if err := t.queryRow(`SELECT COUNT(*) FROM schnitzel_queue_dead`).Scan(&s.Dead); err != nil {
			return err
		}
		if err := t.queryRow(`SELECT (SELECT COUNT(*) FROM schnitzel_queue_dedup WHERE until > ?1) +
  (SELECT COUNT(*) FROM schnitzel_queue_state s JOIN packets p ON p.seq = s.seq WHERE s.acked = 1 AND s.acked_until > ?1)`, now).Scan(&s.DedupKeys); err != nil {
			return err
		}
		if err := t.queryRow(`PRAGMA page_count`).Scan(&s.PageCount); err != nil {
			return err
		}
		return t.queryRow(`PRAGMA freelist_count`).Scan(&s.FreePages)
	})
	if err != nil {
		return s, wrap(q.path, "stats", err)
	}
	if q.c.key != ":memory:" {
		if st, err := os.Stat(q.c.key); err == nil {
			s.FileBytes = st.Size()
		}
		if st, err := os.Stat(q.c.key + "-wal"); err == nil {
			s.WALBytes = st.Size()
		}
	}
	return s, nil
}

// Entry is a queued row as stored, for inspection: JSON stays text so a
// row that does not decode can still be shown.
type Entry struct {
	Seq         int64  `json:"seq"`
	EnqueuedAt  string `json:"enqueued_at"`
	Key         string `json:"idempotency_key"`
	PacketID    string `json:"packet_id"`
	TS          string `json:"ts"`
	Kind        string `json:"kind"`
	SourceID    string `json:"source_id"`
	PayloadJSON string `json:"payload_json"`
	MetaJSON    string `json:"meta_json"`
	Attempts    int    `json:"attempts"`
	LeasedUntil string `json:"leased_until,omitempty"` // RFC 3339, while leased
	RetryAt     string `json:"retry_at,omitempty"`     // RFC 3339, while in backoff
	LastError   string `json:"last_error,omitempty"`
	DeadAt      string `json:"dead_at,omitempty"` // dead letters only
}

func msTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// Peek lists up to n queued rows with seq > after, in order, without
// leasing them.
func (q *Queue) Peek(ctx context.Context, after int64, n int) ([]Entry, error) {
	var out []Entry
	err := q.do(ctx, false, func(t *txn) error {
		now := time.Now().UnixMilli()
		rows, err := t.query(`SELECT p.seq, p.enqueued_at, COALESCE(p.idempotency_key,''), p.packet_id, p.ts, p.kind, p.source_id, p.payload_json, p.meta_json,
  COALESCE(s.attempts,0), COALESCE(s.lease_until,0), COALESCE(s.not_before,0), COALESCE(s.last_error,'')
FROM packets p LEFT JOIN schnitzel_queue_state s ON s.seq = p.seq WHERE p.seq > ? AND COALESCE(s.acked, 0) = 0 ORDER BY p.seq LIMIT ?`, after, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e Entry
			var lease, nb int64
			if err := rows.Scan(&e.Seq, &e.EnqueuedAt, &e.Key, &e.PacketID, &e.TS, &e.Kind, &e.SourceID, &e.PayloadJSON, &e.MetaJSON, &e.Attempts, &lease, &nb, &e.LastError); err != nil {
				return err
			}
			if lease > now {
				e.LeasedUntil = msTime(lease)
			}
			if nb > now {
				e.RetryAt = msTime(nb)
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, wrap(q.path, "peek", err)
}

// Dead lists up to n dead letters with seq > after, in seq order.
func (q *Queue) Dead(ctx context.Context, after int64, n int) ([]Entry, error) {
	var out []Entry
	err := q.do(ctx, false, func(t *txn) error {
		rows, err := t.query(`SELECT seq, enqueued_at, COALESCE(idempotency_key,''), packet_id, ts, kind, source_id, payload_json, meta_json, attempts, last_error, dead_at
FROM schnitzel_queue_dead WHERE seq > ? ORDER BY seq LIMIT ?`, after, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e Entry
			var dead int64
			if err := rows.Scan(&e.Seq, &e.EnqueuedAt, &e.Key, &e.PacketID, &e.TS, &e.Kind, &e.SourceID, &e.PayloadJSON, &e.MetaJSON, &e.Attempts, &e.LastError, &dead); err != nil {
				return err
			}
			e.DeadAt = msTime(dead)
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, wrap(q.path, "dead", err)
}

// Progress is told how many of total items are done; total is -1 when
// unknown.
type Progress func(done, total int64)

// requeueChunk is how many dead letters one requeue transaction moves, so
// a long requeue shows progress and never holds the write lock for long.
const requeueChunk = 500

// Requeue moves dead letters back to the queue tail (new seq, attempts
// reset, key forgotten by the dedup window): the listed seqs, or all when
// seqs is empty. A dead letter whose key is queued again meanwhile is
// dropped as a duplicate and counted in skipped.
func (q *Queue) Requeue(ctx context.Context, seqs []int64, progress Progress) (requeued, skipped int64, err error) {
	all := len(seqs) == 0
	total := int64(len(seqs))
	if all {
		if err := q.do(ctx, false, func(t *txn) error {
			return t.queryRow(`SELECT COUNT(*) FROM schnitzel_queue_dead`).Scan(&total)
		}); err != nil {
			return 0, 0, wrap(q.path, "requeue", err)
		}
	}
	var done int64
	after := int64(0)
	for {
		if err := ctx.Err(); err != nil {
			return requeued, skipped, &Error{Path: q.path, Op: "requeue", Err: err}
		}
		var chunk []int64
		if all {
			if err := q.do(ctx, false, func(t *txn) error {
				rows, err := t.query(`SELECT seq FROM schnitzel_queue_dead WHERE seq > ? ORDER BY seq LIMIT ?`, after, requeueChunk)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var s int64
					if err := rows.Scan(&s); err != nil {
						return err
					}
					chunk = append(chunk, s)
				}
				return rows.Err()
			}); err != nil {
				return requeued, skipped, wrap(q.path, "requeue", err)
			}
		} else {
			n := min(len(seqs), requeueChunk)
			chunk, seqs = seqs[:n], seqs[n:]
		}
		if len(chunk) == 0 {
			return requeued, skipped, nil
		}
		after = chunk[len(chunk)-1]
		var r, s int64
		err := q.do(ctx, true, func(t *txn) error {
			r, s = 0, 0
			for _, seq := range chunk {
				var key sql.NullString
				err := t.queryRow(`SELECT idempotency_key FROM schnitzel_queue_dead WHERE seq = ?`, seq).Scan(&key)
				if errors.Is(err, sql.ErrNoRows) {
					s++
					continue
				}
				if err != nil {
					return err
				}
				if key.Valid {
					if _, err := t.exec(`DELETE FROM schnitzel_queue_dedup WHERE key = ?`, key.String); err != nil {
						return err
					}
				}
				res, err := t.exec(`INSERT OR IGNORE INTO packets (enqueued_at, idempotency_key, packet_id, ts, kind, source_id, payload_json, meta_json)
SELECT enqueued_at, idempotency_key, packet_id, ts, kind, source_id, payload_json, meta_json FROM schnitzel_queue_dead WHERE seq = ?`, seq)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 1 {
					r++
					t.dRows++
					t.newRows = true
					t.c.depthStale.Store(true) // bytes unknown here; recount on next need
				} else {
					s++
				}
				if _, err := t.exec(`DELETE FROM schnitzel_queue_dead WHERE seq = ?`, seq); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return requeued, skipped, wrap(q.path, "requeue", err)
		}
		requeued += r
		skipped += s
		done += int64(len(chunk))
		if progress != nil {
			progress(done, total)
		}
	}
}

// PurgeWhat selects what Purge deletes.
type PurgeWhat struct {
	Queued bool // every queued row (and its lease/attempt state)
	Dead   bool // every dead letter
	Dedup  bool // every remembered key of acked rows
}

// PurgeCounts says how many rows Purge deleted.
type PurgeCounts struct {
	Queued int64 `json:"queued"`
	Dead   int64 `json:"dead"`
	Dedup  int64 `json:"dedup"`
}

// Purge deletes what w selects, in one transaction.
func (q *Queue) Purge(ctx context.Context, w PurgeWhat) (PurgeCounts, error) {
	var pc PurgeCounts
	err := q.do(ctx, true, func(t *txn) error {
		del := func(qs string, n *int64) error {
			res, err := t.exec(qs)
			if err != nil {
				return err
			}
			*n, _ = res.RowsAffected()
			return nil
		}
		if w.Queued {
			if err := del(`DELETE FROM packets`, &pc.Queued); err != nil {
				return err
			}
			if _, err := t.exec(`DELETE FROM schnitzel_queue_state`); err != nil {
				return err
			}
			t.dRows -= pc.Queued
			t.dPending = -t.c.pending
			for seq := range t.c.held {
				t.settle(seq)
			}
			t.c.depthStale.Store(true)
		}
		if w.Dead {
			if err := del(`DELETE FROM schnitzel_queue_dead`, &pc.Dead); err != nil {
				return err
			}
		}
		if w.Dedup {
			if err := del(`DELETE FROM schnitzel_queue_dedup`, &pc.Dedup); err != nil {
				return err
			}
		}
		return nil
	})
	return pc, wrap(q.path, "purge", err)
}

// Check runs SQLite's integrity_check and returns its findings ("ok" when
// the file is sound).
func (q *Queue) Check(ctx context.Context) ([]string, error) { return q.check(ctx, "integrity_check") }

// QuickCheck is Check with SQLite's quick_check: linear in the file size,
// without the index cross-checks (for frequent health checks).
func (q *Queue) QuickCheck(ctx context.Context) ([]string, error) { return q.check(ctx, "quick_check") }

func (q *Queue) check(ctx context.Context, pragma string) ([]string, error) {
	var out []string
	err := q.do(ctx, false, func(t *txn) error {
		rows, err := t.conn.QueryContext(t.ctx, `PRAGMA `+pragma)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, wrap(q.path, pragma, err)
}
