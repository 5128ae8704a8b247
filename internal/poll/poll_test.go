package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

// fatalTB records a Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	failed atomic.Bool
}

func (f *fatalTB) Helper()               {}
func (f *fatalTB) Fatalf(string, ...any) { f.failed.Store(true) }

func TestUntilProgress(t *testing.T) {
	// Slow but moving work reaches its goal even though it takes longer
	// than the stall bound in total.
	var n atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				n.Add(1)
			}
		}
	}()
	f := &fatalTB{TB: t}
	UntilProgress(f, 30*time.Millisecond, "n to reach 20", n.Load, func() bool { return n.Load() >= 20 })
	if f.failed.Load() || n.Load() < 20 {
		t.Fatalf("failed=%v n=%d", f.failed.Load(), n.Load())
	}

	// Work standing still fails after the stall bound.
	var still atomic.Int64
	g := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Fatalf does not stop this goroutine; cond turns true after the
		// failure so the loop ends.
		UntilProgress(g, 20*time.Millisecond, "never", still.Load, func() bool { return g.failed.Load() })
	}()
	<-done
	if !g.failed.Load() {
		t.Fatal("a stalled wait did not fail")
	}
}
