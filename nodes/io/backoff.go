package ionodes

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// backoffWait is plugin.Backoff, the one retry schedule (kept as a name
// here so the sink's call sites and tests read as before).
func backoffWait(n int, base, max time.Duration, u float64) time.Duration {
	return plugin.Backoff(n, base, max, u)
}

// retryAfter parses a Retry-After header (delay seconds or an HTTP date);
// 0 when absent or unparsable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleepCtx waits d or until ctx ends, whichever is first; it reports
// whether the full wait happened.
func sleepCtx(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
