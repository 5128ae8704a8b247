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
	"path/filepath"
	"strings"

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

func pathErr(path string, err error) error {
	return fmt.Errorf("durable queue %s: %w", path, err)
}
