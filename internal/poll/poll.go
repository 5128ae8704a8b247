// Package poll is the tests' one way to wait for a condition: poll it,
// backing off from 1 ms to 50 ms, and fail the test at a deadline. Tests
// never sleep to synchronise.
package poll

import (
	"testing"
	"time"
)

// Until polls cond until it holds, failing t (Fatalf) after d with what
// it was waiting for.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Wait polls cond until it holds (true) or d passes (false).
func Wait(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	interval := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
		if interval < 50*time.Millisecond {
			interval *= 2
		}
	}
	return true
}

// UntilProgress polls cond until it holds, failing t only when progress
// (a counter that grows while work is being done, such as rows delivered)
// has not moved for stall. A loaded machine makes the work slower, not
// stuck: the bound is on standing still, not on the total time.
func UntilProgress(t testing.TB, stall time.Duration, what string, progress func() int64, cond func() bool) {
	t.Helper()
	last := progress()
	for {
		if Wait(stall, func() bool { return cond() || progress() != last }) {
			if cond() {
				return
			}
			last = progress()
			continue
		}
		t.Fatalf("no progress for %v waiting for %s (at %d)", stall, what, last)
	}
}
