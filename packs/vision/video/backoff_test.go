package video

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := newBackoff(1, 5)
	var got []time.Duration
	for i := 0; i < 5; i++ {
		got = append(got, b.next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	b.reset()
	if b.next() != time.Second {
		t.Fatal("reset did not restart at base")
	}
	// Zero (upstream's tests) is floored: never a busy loop.
	z := newBackoff(0, 0)
	if d := z.next(); d != minBackoff {
		t.Fatalf("zero backoff waits %v, want %v", d, minBackoff)
	}
}
