package service

import (
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/runtime"
)

// stopMargin is what the manager waits beyond the runtime's own worst case.
const stopMargin = 5 * time.Second

// unitStopTimeout is the manager's stop timeout for c: StopTimeout, or
// longer when the run's worst-case stop is longer. A signal stop takes at
// most --stop-timeout (drain) + StopGrace (stuck nodes) + CloseAfter
// (closing), so the manager's SIGKILL never cuts the report short.
func unitStopTimeout(c Config) time.Duration {
	drain := runtime.DefaultStopTimeout
	for i, a := range c.Args {
		v, ok := strings.CutPrefix(a, "--stop-timeout=")
		if !ok && a == "--stop-timeout" && i+1 < len(c.Args) {
			v, ok = c.Args[i+1], true
		}
		if !ok {
			continue
		}
		if sec, err := strconv.ParseFloat(v, 64); err == nil && sec > 0 && sec < 1e9 {
			drain = time.Duration(sec * float64(time.Second)) // plain seconds, as the flag takes
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			drain = d
		}
	}
	need := drain + runtime.DefaultStopGrace + runtime.DefaultCloseAfter + stopMargin
	return max(StopTimeout, (need + time.Second - 1).Truncate(time.Second))
}
