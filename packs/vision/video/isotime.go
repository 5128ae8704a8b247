package video

import (
	"fmt"
	"strings"
	"time"
)

// isoLayouts are the forms of Python's datetime.fromisoformat that graphs
// use, with and without an offset.
var isoLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02T15:04:05-0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseISO reads an ISO-8601 timestamp the way upstream's _parse_iso_dt
// does: a trailing Z is UTC, a naive time is UTC (never local time), and a
// space may separate date and time.
func parseISO(s string) (time.Time, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return time.Time{}, fmt.Errorf("empty timestamp")
	}
	if len(raw) > 10 && raw[10] == ' ' {
		raw = raw[:10] + "T" + raw[11:]
	}
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, raw); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO-8601 timestamp: %q", s)
}
