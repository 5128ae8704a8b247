package plugin

import "time"

// Backoff is the wait before retry n (n = 1 for the first retry): base,
// 2·base, 4·base, ... capped at max, with "equal jitter": a uniform draw in
// [d/2, d] where u in [0, 1) is the random draw. The lower half spreads a
// fleet of forwarders that all saw the same outage, so they do not retry in
// lock step. Nodes that retry share it (the HTTP sink, the NATS nodes).
func Backoff(n int, base, max time.Duration, u float64) time.Duration {
	if base <= 0 {
		return 0 // upstream: a zero backoff never sleeps
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + time.Duration(u*float64(d-half))
}
