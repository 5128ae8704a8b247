// Dead letters: moving a queued row to schnitzel_queue_dead.

package queue

import (
	"database/sql"
	"errors"
	"fmt"
)

// deadLetterUndecodable moves a leased row that cannot be delivered (its
// JSON does not decode) to the dead-letter table, unless it is no longer
// leased by owner.
func (t *txn) deadLetterUndecodable(owner string, m Message, reason string) error {
	var leased int
	if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM schnitzel_queue_state WHERE seq = ? AND lease_owner = ? AND acked = 0)`, m.Seq, owner).Scan(&leased); err != nil {
		return err
	}
	if leased == 0 {
		return nil
	}
	return t.deadLetter(m.Seq, m.Attempt-1, reason)
}

// deadLetter moves a queued row to the dead-letter table.
func (t *txn) deadLetter(seq int64, attempts int, reason string) error {
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

// gaveUp is the dead-letter reason of a row that ran out of attempts.
func gaveUp(attempts int, last string) string {
	return fmt.Sprintf("gave up after %d failed attempts; last: %s", attempts, last)
}
