// Package durable holds the store-and-forward nodes on the SQLite queue
// (internal/queue), under upstream's plugin strings
// schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink, SqliteQueueSource
// and SqliteQueueAckSink (the same at the seed and at HEAD).
//
// Nodes on one file in one process share one connection and one writer,
// so the sink's batches, the source's leases and the ack sink's acks
// group-commit together.
package durable

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const mod = "schnitzel_stream.nodes.durable_sqlite:"

// Register adds the three durable nodes to r.
func Register(r *plugin.Registry) {
	registerSink(r)
	registerSource(r)
	registerAck(r)
}

// secs turns a config number of seconds into a duration.
func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func checkPath(p string) error {
	if strings.TrimSpace(p) == "" {
		return plugin.Errorf("path", "required: the SQLite queue file, relative to the working directory")
	}
	return nil
}

func checkSync(s *string) error {
	u := strings.ToUpper(strings.TrimSpace(*s))
	if u != "FULL" && u != "NORMAL" {
		return plugin.Errorf("synchronous", "must be FULL or NORMAL, got %q", *s)
	}
	*s = u
	return nil
}

// pyPath renders a path as Python's str(Path(p)) does: "." segments and
// repeated or trailing slashes go, ".." stays. Upstream puts this form in
// the durable meta block.
func pyPath(p string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		return "."
	}
	abs := strings.HasPrefix(p, "/")
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s == "" || s == "." {
			continue
		}
		parts = append(parts, s)
	}
	out := strings.Join(parts, "/")
	if abs {
		return "/" + out
	}
	if out == "" {
		return "."
	}
	return out
}

// sameFile reports whether two configured paths name one file, for acks
// of blocks written without a queue id (by the Python project).
func sameFile(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && filepath.Clean(aa) == filepath.Clean(bb)
}

// block builds the durable meta block: upstream's four keys, then ours.
func block(path string, seq int64, nodeID, queueID string, attempt int) *packet.Map {
	m := packet.MapOf("queue", "sqlite", "path", path, "seq", seq, "node_id", nodeID, "queue_id", queueID)
	if attempt > 0 {
		m.Set("attempt", int64(attempt))
	}
	return m
}

// withBlock returns a copy of p whose meta carries the block under key
// (replacing any older one, as upstream does).
func withBlock(p *packet.Packet, key string, b *packet.Map) *packet.Packet {
	c := p.Copy()
	c.Meta = p.Meta.Clone(1)
	c.Meta.Set(key, b)
	return c
}

// warnLimiter logs the first few occurrences of a per-packet problem and
// then only counts, so a bad stream cannot flood the log.
type warnLimiter struct {
	mu sync.Mutex
	n  int
}

func (w *warnLimiter) allow() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return w.n <= 5
}

// rateLog logs the first few of a kind of event, then at most one line
// every rateLogEvery saying how many were not logged.
type rateLog struct {
	mu         sync.Mutex
	n          int
	suppressed int
	last       time.Time
}

const rateLogEvery = 10 * time.Second

func (r *rateLog) log(l *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	r.n++
	now := time.Now()
	if r.n > 5 && now.Sub(r.last) < rateLogEvery {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	sup := r.suppressed
	r.suppressed, r.last = 0, now
	r.mu.Unlock()
	if sup > 0 {
		args = append(args, "not_logged_since_last", sup)
	}
	l.Warn(msg, args...)
}

func pathErr(path string, err error) error {
	return fmt.Errorf("durable queue %s: %w", path, err)
}
