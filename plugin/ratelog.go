package plugin

import (
	"log/slog"
	"sync"
	"time"
)

// RateLog bounds a warning that can repeat per packet, so that a bad
// stream or an outage cannot flood the log: the first Burst occurrences
// are logged, then at most one line per Every, which carries
// suppressed_since_last (how many were not logged). The zero value logs
// the first one, then one per 10 s. It is safe for concurrent use; nodes
// keep one per kind of problem.
type RateLog struct {
	Burst int           // logged before limiting; 0: 1
	Every time.Duration // at most one line per period after that; 0: 10 s

	mu         sync.Mutex
	n          int
	last       time.Time
	suppressed int64
}

// Warn logs msg at warning level unless the rate is exceeded.
func (r *RateLog) Warn(l *slog.Logger, msg string, args ...any) { r.WarnN(l, 1, msg, args...) }

// WarnN is Warn for count occurrences at once (a failed batch).
func (r *RateLog) WarnN(l *slog.Logger, count int64, msg string, args ...any) {
	burst, every := r.Burst, r.Every
	if burst <= 0 {
		burst = 1
	}
	if every <= 0 {
		every = 10 * time.Second
	}
	now := time.Now()
	r.mu.Lock()
	r.n++
	if r.n > burst && now.Sub(r.last) < every {
		r.suppressed += count
		r.mu.Unlock()
		return
	}
	sup := r.suppressed
	r.suppressed, r.last = 0, now
	r.mu.Unlock()
	if sup > 0 {
		args = append(args, "suppressed_since_last", sup)
	}
	l.Warn(msg, args...)
}
