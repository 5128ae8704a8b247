package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestChunkedEnqueueDuplicates mixes, inside one multi-row INSERT, new
// keys, keys already queued, keys repeated within the batch and keys of
// acked rows still remembered: results must be those of row-by-row
// inserts, and new rows must get increasing seqs in record order.
func TestChunkedEnqueueDuplicates(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		ctx := context.Background()
		q := open(Options{})
		pre := mustEnqueue(t, q, recKey(1, "queued"), recKey(2, "acked"))
		if _, err := q.Ack(ctx, refs(pre[1].Seq)...); err != nil {
			t.Fatal(err)
		}
		// Compact, so "acked" lives in the dedup table only.
		if err := q.do(ctx, true, func(tx *txn) error { return tx.compact() }); err != nil {
			t.Fatal(err)
		}
		type want struct {
			dup      bool
			seq      int64 // of the row a duplicate names; -1: that of record 40
			conflict bool
		}
		var batch []Record
		wants := map[int]want{}
		for i := 0; i < 150; i++ {
			switch i {
			case 10:
				batch = append(batch, recKey(1, "queued")) // same payload as the queued row
				wants[i] = want{dup: true, seq: pre[0].Seq}
			case 20:
				batch = append(batch, recKey(99, "queued")) // another payload
				wants[i] = want{dup: true, seq: pre[0].Seq, conflict: true}
			case 30:
				batch = append(batch, recKey(2, "acked"))
				wants[i] = want{dup: true, seq: pre[1].Seq}
			case 40, 41, 70, 130:
				batch = append(batch, recKey(40, "twice"))
				wants[i] = want{dup: i != 40, seq: -1}
			default:
				batch = append(batch, rec(1000+i))
			}
		}
		res := mustEnqueue(t, q, batch...)
		last := pre[1].Seq
		for i, r := range res {
			w := wants[i]
			if !w.dup {
				if r.Duplicate || r.Seq <= last {
					t.Fatalf("record %d: %+v, want a new row after seq %d", i, r, last)
				}
				last = r.Seq
				continue
			}
			if w.seq == -1 {
				w.seq = res[40].Seq
			}
			if !r.Duplicate || r.Seq != w.seq || r.Conflict != w.conflict {
				t.Fatalf("record %d: %+v, want %+v", i, r, w)
			}
		}
		c := q.Counters()
		if c.Enqueued != 2+144 || c.Duplicates != 6 || c.Conflicts != 1 {
			t.Fatalf("counters %+v", c)
		}
		if d := q.Depth(); d != 1+144 {
			t.Fatalf("depth %d", d)
		}
		// Rows come out in record order.
		got := mustLease(t, q, 1000, time.Minute)
		var seqs []int64
		for _, r := range res {
			if !r.Duplicate {
				seqs = append(seqs, r.Seq)
			}
		}
		if !slices.Equal(seqsOf(got)[1:], seqs) {
			t.Fatalf("leased %v, want %v after the queued row", seqsOf(got), seqs)
		}
		for i, m := range got[1:] {
			if m.Key != batch[indexOfSeq(res, m.Seq)].Key {
				t.Fatalf("message %d: key %s", i, m.Key)
			}
		}
	})
}

func indexOfSeq(res []Result, seq int64) int {
	for i, r := range res {
		if !r.Duplicate && r.Seq == seq {
			return i
		}
	}
	return -1
}

// TestChunkedEnqueueStaleKey enqueues, in one multi-row INSERT, the key of
// an acked row awaiting compaction whose key is not remembered (dedup
// window disabled): the row is stored again, in record order.
func TestChunkedEnqueueStaleKey(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		ctx := context.Background()
		q := open(Options{DedupWindow: -1})
		pre := mustEnqueue(t, q, recKey(1, "k"), rec(2))
		if _, err := q.Ack(ctx, refs(pre[0].Seq)...); err != nil { // rec(2) stays queued: no compaction yet
			t.Fatal(err)
		}
		batch := []Record{rec(10), rec(11), recKey(1, "k"), rec(12)}
		res := mustEnqueue(t, q, batch...)
		last := pre[1].Seq
		for i, r := range res {
			if r.Duplicate || r.Seq <= last {
				t.Fatalf("record %d: %+v, want a new row after seq %d (all: %+v)", i, r, last, res)
			}
			last = r.Seq
		}
		got := mustLease(t, q, 10, time.Minute)
		want := []int64{pre[1].Seq, res[0].Seq, res[1].Seq, res[2].Seq, res[3].Seq}
		if !slices.Equal(seqsOf(got), want) {
			t.Fatalf("leased %v, want %v", seqsOf(got), want)
		}
		if got[3].Key != "k" {
			t.Fatalf("row %d has key %s", got[3].Seq, got[3].Key)
		}
	})
}

// TestLoadSkipsGoneAndPoisonRows: rows deleted or corrupted between
// LeaseUnloaded and Load are left out, the corrupted one dead-lettered.
func TestLoadSkipsGoneAndPoisonRows(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		ctx := context.Background()
		q := open(Options{})
		recs := []Record{rec(1), rec(2), rec(3), rec(4)}
		res := mustEnqueue(t, q, recs...)
		ms, err := q.LeaseUnloaded(ctx, 10, time.Minute)
		if err != nil || len(ms) != 4 || ms[0].Packet != nil || ms[0].Attempt != 1 {
			t.Fatalf("lease: %+v %v", ms, err)
		}
		if err := q.do(ctx, true, func(tx *txn) error {
			if _, err := tx.exec(`DELETE FROM packets WHERE seq = ?`, res[1].Seq); err != nil {
				return err
			}
			_, err := tx.exec(`UPDATE packets SET meta_json = '{' WHERE seq = ?`, res[2].Seq)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got, err := q.Load(ctx, ms)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqsOf(got), []int64{res[0].Seq, res[3].Seq}) || got[1].Packet == nil || got[1].Key != recs[3].Key {
			t.Fatalf("loaded %v", seqsOf(got))
		}
		dead, err := q.Dead(ctx, 0, 10)
		if err != nil || len(dead) != 1 || dead[0].Seq != res[2].Seq {
			t.Fatalf("dead %+v %v", dead, err)
		}
	})
}

// TestCompactionRemembersKeys: compaction of a drained queue remembers
// every key until its ack time plus the window; acks spread over more
// than untilSpread keep their own times.
func TestCompactionRemembersKeys(t *testing.T) {
	for _, spread := range []time.Duration{0, 10 * time.Second} {
		t.Run(fmt.Sprint(spread), func(t *testing.T) {
			backends(t, func(t *testing.T, open func(Options) *Queue) {
				ctx := context.Background()
				q := open(Options{DedupWindow: time.Hour})
				var recs []Record
				for i := 0; i < 20; i++ {
					recs = append(recs, rec(i))
				}
				res := mustEnqueue(t, q, recs...)
				ms := mustLease(t, q, 20, time.Minute)
				var until []int64
				if err := q.do(ctx, true, func(tx *txn) error {
					var rs []Ref
					for _, m := range ms {
						rs = append(rs, Ref{Seq: m.Seq})
					}
					if err := tx.ack(q, rs, make([]AckStatus, len(rs))); err != nil {
						return err
					}
					// Pretend the first half was acked spread earlier.
					if _, err := tx.exec(`UPDATE schnitzel_queue_state SET acked_until = acked_until - ? WHERE seq <= ?`, spread.Milliseconds(), res[9].Seq); err != nil {
						return err
					}
					rows, err := tx.query(`SELECT acked_until FROM schnitzel_queue_state ORDER BY seq`)
					if err != nil {
						return err
					}
					defer rows.Close()
					for rows.Next() {
						var u int64
						rows.Scan(&u)
						until = append(until, u)
					}
					return rows.Err()
				}); err != nil {
					t.Fatal(err)
				}
				if err := q.do(ctx, true, func(tx *txn) error { return tx.compact() }); err != nil {
					t.Fatal(err)
				}
				if err := q.do(ctx, false, func(tx *txn) error {
					var n int
					if err := tx.queryRow(`SELECT COUNT(*) FROM packets`).Scan(&n); err != nil || n != 0 {
						return fmt.Errorf("%d rows left after compaction (%v)", n, err)
					}
					for i, r := range res {
						var u int64
						if err := tx.queryRow(`SELECT until FROM schnitzel_queue_dedup WHERE key = ?`, recs[i].Key).Scan(&u); err != nil {
							return fmt.Errorf("key of seq %d: %w", r.Seq, err)
						}
						lo, hi := until[i], until[i]+untilSpread.Milliseconds()
						if spread > untilSpread {
							hi = lo
						}
						if u < lo || u > hi {
							return fmt.Errorf("key of seq %d remembered until %d, acked until %d", r.Seq, u, until[i])
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if r := mustEnqueue(t, q, recs[3])[0]; !r.Duplicate || r.Seq != res[3].Seq {
					t.Fatalf("replay after compaction: %+v", r)
				}
			})
		})
	}
}

// TestChunkedEnqueueAfterRowByRow: under max_bytes a batch may go in
// chunk, row by row, then chunk again; seqs stay right.
func TestChunkedEnqueueAfterRowByRow(t *testing.T) {
	backends(t, func(t *testing.T, open func(Options) *Queue) {
		small := func(i int) Record { return rec(i) }
		big := rec(100)
		big.Payload = `{"pad":"` + strings.Repeat("x", 2000) + `"}`
		enqAt := "2026-01-01T00:00:00.000000+00:00" // sizes only depend on its length
		var batch []Record
		for i := 0; i < 8; i++ {
			batch = append(batch, small(i))
		}
		batch = append(batch, big, small(9), small(10), small(11))
		room := int64(0)
		for _, r := range batch[:9] {
			room += r.size(enqAt)
		}
		room += batch[9].size(enqAt) * 5 / 2 // chunk of 4 does not fit after the 8, the big row alone does, then a chunk of 2
		q := open(Options{MaxBytes: room, Overflow: OverflowDropOldest})
		res := mustEnqueue(t, q, batch...)
		for i, r := range res {
			if r.Duplicate || (i > 0 && r.Seq <= res[i-1].Seq) {
				t.Fatalf("results %+v", res)
			}
		}
		got := mustLease(t, q, 100, time.Minute)
		for _, m := range got {
			i := indexOfSeq(res, m.Seq)
			if i < 0 || m.Key != batch[i].Key {
				t.Fatalf("row %d: key %s, results %+v", m.Seq, m.Key, res)
			}
		}
	})
}
