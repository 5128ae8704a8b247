package plugin

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLog(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	r := RateLog{Burst: 3, Every: time.Hour}
	for range 10 {
		r.Warn(l, "bad row")
	}
	if got := strings.Count(buf.String(), "bad row"); got != 3 {
		t.Fatalf("logged %d lines, want the burst of 3:\n%s", got, buf.String())
	}
	r.WarnN(l, 5, "bad batch")
	r.last = time.Now().Add(-2 * time.Hour) // the period has passed
	r.Warn(l, "again")
	out := buf.String()
	if strings.Contains(out, "bad batch") || !strings.Contains(out, "again") || !strings.Contains(out, "suppressed_since_last=12") {
		t.Fatalf("after the period want one line with suppressed_since_last=12 (7 + 5):\n%s", out)
	}
	var zero RateLog
	buf.Reset()
	zero.Warn(l, "one")
	zero.Warn(l, "two")
	if strings.Count(buf.String(), "level=WARN") != 1 {
		t.Fatalf("zero value: want only the first line:\n%s", buf.String())
	}
}
