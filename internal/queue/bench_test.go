package queue

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func benchRecords(n int) []Record {
	out := make([]Record, n)
	for i := range out {
		p := packet.New("event", "cam01", packet.MapOf("message", "durable enqueue", "value", int64(i), "score", 0.87), "", nil)
		out[i], _ = RecordOf(p, "")
	}
	return out
}

// BenchmarkEnqueue measures durable enqueue (synchronous=FULL: every
// EnqueueBatch returns after its fsync'd commit) at batch sizes 1, 100 and
// 1000, plus 1-row enqueues from 64 goroutines that group commit.
func BenchmarkEnqueue(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			q, err := Open(filepath.Join(b.TempDir(), "q.sqlite3"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			rows := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				recs := benchRecords(batch)
				b.StartTimer()
				if _, err := q.EnqueueBatch(ctx, recs); err != nil {
					b.Fatal(err)
				}
				rows += batch
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
	b.Run("batch=1/writers=64", func(b *testing.B) {
		q, err := Open(filepath.Join(b.TempDir(), "q.sqlite3"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		recs := benchRecords(b.N)
		c0 := q.Commits()
		b.ReportAllocs()
		b.ResetTimer()
		var wg sync.WaitGroup
		const writers = 64
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < b.N; i += writers {
					if _, err := q.Enqueue(context.Background(), recs[i]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(b.N)/float64(max(1, q.Commits()-c0)), "rows/commit")
	})
}

// BenchmarkDrainAck measures lease + ack of a backlog in batches of 1000
// (two commits per batch).
func BenchmarkDrainAck(b *testing.B) {
	q, err := Open(filepath.Join(b.TempDir(), "q.sqlite3"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	for left := b.N; left > 0; left -= 1000 {
		if _, err := q.EnqueueBatch(ctx, benchRecords(min(left, 1000))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	refs := make([]Ref, 0, 1000)
	for done < b.N {
		ms, err := q.Lease(ctx, 1000, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(ms) == 0 {
			b.Fatalf("drained %d of %d", done, b.N)
		}
		refs = refs[:0]
		for _, m := range ms {
			refs = append(refs, Ref{Seq: m.Seq})
		}
		if _, err := q.Ack(ctx, refs...); err != nil {
			b.Fatal(err)
		}
		done += len(ms)
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "rows/s")
}
