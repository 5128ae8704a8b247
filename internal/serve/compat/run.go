package compat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
)

// errBusy: every run slot is taken (upstream had no bound: D-API-8).
var errBusy = errors.New("too many graph runs in progress")

// runner runs a graph to completion in this process, bounded: the
// hostile-input limits on the text, max_events, a timeout, a cap on runs
// at once. Upstream wrote each spec, interpolated, to a temp file it
// never deleted and ran a child process (D-API-13); nothing is written
// here.
type runner struct {
	opts    engine.Options
	timeout time.Duration
	slots   chan struct{}
}

// runResult is what upstream's graph/run returns, plus our report.
type runResult struct {
	ReturnCode int
	Error      string // "" when it ran without error
	Stdout     string // last 20 non-blank lines
	Stderr     string // the run's log, last 20 non-blank lines
	Report     *engine.Report
	Diags      engine.Diags
}

func (rn *runner) run(ctx context.Context, name string, yaml []byte, lookup func(string) (string, bool), maxEvents int64) (runResult, error) {
	select {
	case rn.slots <- struct{}{}:
		defer func() { <-rn.slots }()
	default:
		return runResult{}, errBusy
	}
	var out, logs tail
	opts := rn.opts
	opts.LookupEnv = lookup
	opts.MaxEvents = maxEvents
	opts.Stdout = &out
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts.Started = nil
	if opts.StopTimeout <= 0 || opts.StopTimeout > 5*time.Second {
		opts.StopTimeout = 2 * time.Second
	}
	plan, diags, err := engine.Load(name, yaml, opts)
	if err != nil {
		var inv *engine.InvalidError
		if !errors.As(err, &inv) {
			return runResult{}, err
		}
		return runResult{ReturnCode: 2, Error: diagText(diags), Diags: diags}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, rn.timeout)
	defer cancel()
	rep, err := engine.Execute(rctx, plan, name, opts)
	res := runResult{Diags: diags, Report: rep}
	switch {
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		res.ReturnCode, res.Error = 124, fmt.Sprintf("graph run timed out after %s", rn.timeout)
	case err != nil:
		res.ReturnCode, res.Error = 1, err.Error()
	case rep.Error != nil:
		res.ReturnCode, res.Error = 1, fmt.Sprintf("node %q failed (%s): %s", rep.Error.Node, rep.Error.Phase, rep.Error.Message)
	case rep.Status == "error":
		res.ReturnCode, res.Error = 1, "run ended with status error"
	case ctx.Err() != nil:
		res.ReturnCode, res.Error = 1, "run cancelled: the client went away"
	}
	res.Stdout, res.Stderr = out.String(), logs.String()
	return res, nil
}

func diagText(ds engine.Diags) string {
	var lines []string
	for _, d := range ds.Errors() {
		lines = append(lines, d.String())
	}
	return strings.Join(lines, "\n")
}

// tail keeps the last tailLines non-blank lines written to it, each
// clipped, so a chatty graph costs bounded memory.
type tail struct {
	mu      sync.Mutex
	lines   []string
	partial strings.Builder
}

const (
	tailLines   = 20 // upstream's _tail
	tailLineMax = 4096
)

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range string(p) {
		if c == '\n' {
			t.flush()
			continue
		}
		if t.partial.Len() < tailLineMax {
			t.partial.WriteRune(c)
		}
	}
	return len(p), nil
}

func (t *tail) flush() {
	line := t.partial.String()
	t.partial.Reset()
	if strings.TrimSpace(line) == "" {
		return
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-tailLines:]...)
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.partial.Len() > 0 {
		t.flush()
	}
	return strings.Join(t.lines, "\n")
}
