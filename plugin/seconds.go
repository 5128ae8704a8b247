package plugin

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
)

// Seconds is a duration in a graph config, written as upstream writes
// durations: a number of seconds (5, 0.25). A Go duration string ("250ms",
// "1m30s") is accepted too. It stays a float64 so configs compare and
// print it as seconds, and each node checks its own range; Duration
// converts. NaN and infinities are refused when the config is decoded.
type Seconds float64

// maxDuration is where Duration saturates (about 292 years).
const maxDuration = time.Duration(math.MaxInt64)

// Duration is s as a time.Duration, saturated at ±292 years instead of
// overflowing.
func (s Seconds) Duration() time.Duration {
	ns := float64(s) * float64(time.Second)
	switch {
	case ns >= float64(maxDuration):
		return maxDuration
	case ns <= -float64(maxDuration):
		return -maxDuration
	}
	return time.Duration(ns)
}

var secondsType = reflect.TypeFor[Seconds]()

// parseSeconds reads a config value as seconds.
func parseSeconds(raw any) (float64, error) {
	var f float64
	switch x := raw.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	case string:
		t := strings.TrimSpace(x)
		if v, ok := toFloat(t); ok {
			f = v
			break
		}
		d, err := time.ParseDuration(t)
		if err != nil {
			return 0, fmt.Errorf("expected a number of seconds (like 2.5) or a duration like \"250ms\", got %s", shown(raw))
		}
		f = d.Seconds()
	default:
		return 0, fmt.Errorf("expected a number of seconds (like 2.5), got %s", shown(raw))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("expected a finite number of seconds, got %s", shown(raw))
	}
	return f, nil
}
