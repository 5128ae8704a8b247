package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func TestProgressLine(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	ps := &progressState{start: t0}
	snap := func(emitted, consumed, dropped, errs, depth int64) runtime.Snapshot {
		return runtime.Snapshot{SourceEmitted: emitted, Nodes: []runtime.NodeStats{
			{ID: "q", IsSource: true, Produced: emitted, Extension: []plugin.Metric{{Name: "queue_depth", Value: depth}}},
			{ID: "mid", InboxDropped: dropped, Errors: errs},
			{ID: "out", IsSink: true, Consumed: consumed},
		}}
	}
	ps.line(snap(0, 0, 0, 0, 500), t0)
	got := ps.line(snap(1000, 400, 3, 2, 120), t0.Add(2*time.Second))
	for _, want := range []string{"2s", "in 500/s", "out 200/s", "packets 1000", "drops 3", "errors 2", "queue 120"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
	// No durable source: no queue figure.
	ps2 := &progressState{start: t0}
	if got := ps2.line(runtime.Snapshot{Nodes: []runtime.NodeStats{{ID: "s", IsSource: true}}}, t0); strings.Contains(got, "queue") {
		t.Errorf("line %q shows a queue without a durable source", got)
	}
}

// The status line is for a person at a terminal only.
func TestProgressWanted(t *testing.T) {
	a := &App{Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	if a.progressWanted(&runOptions{}) {
		t.Error("a buffer is not a terminal")
	}
	defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	if !a.progressWanted(&runOptions{}) {
		t.Error("no progress at a terminal with default options")
	}
	for _, o := range []*runOptions{{noProgress: true}, {logOptions: logOptions{format: "json"}}, {logOptions: logOptions{file: "x.log"}}} {
		if a.progressWanted(o) {
			t.Errorf("progress with %+v", o)
		}
	}
	svc := &App{Stderr: &bytes.Buffer{}, Getenv: func(k string) string {
		if k == "INVOCATION_ID" {
			return "abc"
		}
		return ""
	}}
	if svc.progressWanted(&runOptions{}) {
		t.Error("progress under systemd")
	}
}
