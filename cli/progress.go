package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/schnitzel-stream/schnitzel/internal/runtime"
)

// switchWriter lets the logger's output move onto the progress display
// (which prints log lines above its status line) and back.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	s.mu.Unlock()
	return w.Write(b)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

// progressWanted: a live status line only for a person at a terminal, not
// for logs read by machines (--log-format json) nor under a service
// manager (systemd sets INVOCATION_ID or NOTIFY_SOCKET).
func (a *App) progressWanted(o *runOptions) bool {
	if o.noProgress || o.format == "json" || o.file != "" {
		return false
	}
	if a.Getenv("INVOCATION_ID") != "" || a.Getenv("NOTIFY_SOCKET") != "" || a.Getenv("CI") != "" {
		return false
	}
	return isTerminal(a.Stderr)
}

// isTerminal reports whether w is a terminal (a variable for tests).
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// startProgress shows one status line on stderr, refreshed four times a
// second, with log lines printed above it; the returned func removes it.
func (a *App) startProgress(x *runtime.Executor, logw *switchWriter) func() {
	p := mpb.New(mpb.WithOutput(a.Stderr), mpb.WithRefreshRate(250*time.Millisecond), mpb.WithAutoRefresh())
	st := &progressState{start: time.Now()}
	bar := p.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
		return st.line(x.Snapshot(), time.Now())
	})))
	logw.set(p)
	return func() {
		logw.set(a.Stderr)
		bar.Abort(true)
		p.Wait()
	}
}

// progressState turns successive snapshots into rates.
type progressState struct {
	start   time.Time
	last    time.Time
	in, out int64
	inRate  float64
	outRate float64
}

// line is the status: elapsed, packets/s in (source emits) and out
// (consumed by sinks), drops, errors and, for durable sources, the queue
// depth.
func (ps *progressState) line(s runtime.Snapshot, now time.Time) string {
	var out, drops, errs, depth int64
	haveDepth := false
	for _, n := range s.Nodes {
		if n.IsSink {
			out += n.Consumed
		}
		drops += n.InboxDropped
		errs += n.Errors
		if n.IsSource {
			for _, m := range n.Extension {
				if m.Name == "queue_depth" {
					depth += m.Value
					haveDepth = true
				}
			}
		}
	}
	if dt := now.Sub(ps.last).Seconds(); !ps.last.IsZero() && dt > 0 {
		ps.inRate = float64(s.SourceEmitted-ps.in) / dt
		ps.outRate = float64(out-ps.out) / dt
	}
	ps.last, ps.in, ps.out = now, s.SourceEmitted, out
	line := fmt.Sprintf("%s  in %.0f/s  out %.0f/s  packets %d  drops %d  errors %d",
		now.Sub(ps.start).Round(100*time.Millisecond), ps.inRate, ps.outRate, s.SourceEmitted, drops, errs)
	if haveDepth {
		line += fmt.Sprintf("  queue %d", depth)
	}
	return line
}
