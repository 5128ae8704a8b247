package lines

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const waitFor = 10 * time.Second

// collect is an Emitter that keeps packets and, when ack is set, acks
// each as a committing sink would once it is stored.
type collect struct {
	mu   sync.Mutex
	pkts []*packet.Packet
	ack  func(i int) bool // nil: never ack
}

func (c *collect) Emit(p *packet.Packet) error {
	c.mu.Lock()
	i := len(c.pkts)
	c.pkts = append(c.pkts, p)
	ack := c.ack
	c.mu.Unlock()
	if ack != nil && p.Ack != nil && ack(i) {
		p.Ack()
	}
	return nil
}
func (c *collect) EmitPort(_ string, p *packet.Packet) error { return c.Emit(p) }

func (c *collect) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.pkts {
		s, _ := p.Payload.(*packet.Map).GetString("line")
		out = append(out, s)
	}
	return out
}

type tailRun struct {
	t      *testing.T
	src    *tailSource
	out    *collect
	cancel context.CancelFunc
	done   chan error
}

// startTail builds and starts a FileTailSource polling every 10 ms.
func startTail(t *testing.T, cfg *packet.Map, env plugin.Env, out *collect) *tailRun {
	t.Helper()
	c := packet.MapOf("poll_interval_sec", 0.01)
	for _, e := range cfg.Entries() {
		c.Set(e.Key, e.Value)
	}
	src := build(t, "FileTailSource", c, env).(*tailSource)
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		out = &collect{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &tailRun{t: t, src: src, out: out, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Run(ctx, out) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the run and closes the source (saving its offsets).
func (r *tailRun) stop() {
	r.t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("run: %v", err)
	}
	if err := r.src.Close(context.Background()); err != nil {
		r.t.Errorf("close: %v", err)
	}
}

// want waits until the lines emitted are want, in that order, then
// for two more polls to see that nothing else comes.
func (r *tailRun) want(want ...string) {
	r.t.Helper()
	poll.Until(r.t, waitFor, "lines "+strings.Join(want, ","), func() bool { return len(r.out.lines()) >= len(want) })
	r.quiet()
	if got := r.out.lines(); !slices.Equal(got, want) {
		r.t.Fatalf("lines %q, want %q", got, want)
	}
}

// quiet waits for two complete polls.
func (r *tailRun) quiet() {
	r.t.Helper()
	n := r.src.polls.Load()
	poll.Until(r.t, waitFor, "two polls", func() bool { return r.src.polls.Load() >= n+2 })
}

func write(t *testing.T, path, s string, flag int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, s string) { t.Helper(); write(t, path, s, os.O_APPEND) }

func tailCfg(dir string, paths ...string) *packet.Map {
	ps := []any{}
	for _, p := range paths {
		ps = append(ps, p)
	}
	return packet.MapOf("paths", ps, "state_dir", filepath.Join(dir, "state"))
}

func TestTailAppendAndPartialLine(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendTo(t, log, "a\r\nb\n")
	r := startTail(t, tailCfg(dir, log), plugin.Env{}, nil)
	r.want("a", "b")
	appendTo(t, log, "par")
	r.want("a", "b") // not complete yet
	appendTo(t, log, "tial\n")
	r.want("a", "b", "partial")
	p := r.out.pkts[2]
	if off, _ := p.Meta.Get("file_offset"); off != int64(5) {
		t.Errorf("file_offset %v, want 5", off)
	}
	if fp, _ := p.Meta.GetString("file_path"); fp != log || p.SourceID != log {
		t.Errorf("file_path %q source_id %q, want %q", fp, p.SourceID, log)
	}
	if k, _ := p.Meta.GetString("idempotency_key"); !strings.HasPrefix(k, "tail:") || !strings.Contains(k, ":5:") {
		t.Errorf("idempotency_key %q", k)
	}
	if n := metric(r.src, "files"); n != 1 {
		t.Errorf("files %d, want 1", n)
	}
}

func TestTailRenameRotation(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendTo(t, log, "1\n2\n")
	r := startTail(t, tailCfg(dir, log), plugin.Env{}, nil)
	r.want("1", "2")
	// logrotate create: rename, the writer still appends to its open
	// file, then a new file at the path
	old, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.WriteString("3\n"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, log, "4\n5\n")
	r.want("1", "2", "3", "4", "5")
	if n := metric(r.src, "rotations_total"); n != 1 {
		t.Errorf("rotations_total %d, want 1", n)
	}
	// the old file is finished and closed once it stops growing
	poll.Until(t, waitFor, "the rotated file closed", func() bool { return metric(r.src, "files") == 1 })
	appendTo(t, log, "6\n")
	r.want("1", "2", "3", "4", "5", "6")
}

func TestTailCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendTo(t, log, "a\nb\n")
	r := startTail(t, tailCfg(dir, log), plugin.Env{}, nil)
	r.want("a", "b")
	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, log, "c\n")
	r.want("a", "b", "c")
	if n := metric(r.src, "truncations_total"); n != 1 {
		t.Errorf("truncations_total %d, want 1", n)
	}
	// replaced by more than was read, between two polls: the size alone
	// does not tell, the first bytes do
	f, err := os.OpenFile(log, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XX\nYY\nZZ\n"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r.want("a", "b", "c", "XX", "YY", "ZZ")
	if n := metric(r.src, "truncations_total"); n != 2 {
		t.Errorf("truncations_total %d, want 2", n)
	}
}

func TestTailGlobPicksUpNewFile(t *testing.T) {
	dir := t.TempDir()
	appendTo(t, filepath.Join(dir, "a.log"), "a1\n")
	r := startTail(t, tailCfg(dir, filepath.Join(dir, "*.log")), plugin.Env{}, nil)
	r.want("a1")
	appendTo(t, filepath.Join(dir, "b.txt"), "not followed\n")
	appendTo(t, filepath.Join(dir, "b.log"), "b1\n")
	r.want("a1", "b1")
	if n := metric(r.src, "files"); n != 2 {
		t.Errorf("files %d, want 2", n)
	}
}

func TestTailStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendTo(t, log, "old\n")
	cfg := tailCfg(dir, filepath.Join(dir, "*.log"))
	cfg.Set("start_at", "end")
	r := startTail(t, cfg, plugin.Env{}, nil)
	r.quiet()
	appendTo(t, log, "new\n")
	appendTo(t, filepath.Join(dir, "later.log"), "from the start\n") // found later: read whole
	r.want("new", "from the start")
}

func TestTailFileDisappears(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendTo(t, log, "1\n")
	r := startTail(t, tailCfg(dir, log), plugin.Env{}, nil)
	r.want("1")
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, waitFor, "the deleted file closed", func() bool { return metric(r.src, "files") == 0 })
	appendTo(t, log, "2\n")
	r.want("1", "2")
}

// TestTailRestart: a restart resumes at the saved offset, without a line
// repeated or skipped, also across a rotation while stopped.
func TestTailRestart(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	cfg := tailCfg(dir, log)
	appendTo(t, log, "1\n2\n3\n")
	r := startTail(t, cfg, plugin.Env{}, nil)
	r.want("1", "2", "3")
	r.stop()

	appendTo(t, log, "4\n5")
	r = startTail(t, cfg, plugin.Env{}, nil)
	r.want("4")
	r.stop()

	// rotated while stopped: the rest of the old file, then the new one
	appendTo(t, log, "\n6\n")
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, log, "7\n")
	r = startTail(t, cfg, plugin.Env{}, nil)
	r.want("5", "6", "7")
	r.stop()

	r = startTail(t, cfg, plugin.Env{}, nil)
	r.want()
}

// TestTailOffsetsWaitForAcks: under a committing sink the offset moves
// only over acked lines; a replay carries the same idempotency keys.
func TestTailOffsetsWaitForAcks(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	cfg := tailCfg(dir, log)
	env := plugin.Env{CommitDownstream: true}
	appendTo(t, log, "1\n2\n3\n4\n")
	first := &collect{ack: func(i int) bool { return i != 2 }} // line 3 is never committed
	r := startTail(t, cfg, env, first)
	r.want("1", "2", "3", "4")
	r.stop()
	keys := func(c *collect) []string {
		var ks []string
		for _, p := range c.pkts {
			k, _ := p.Meta.GetString("idempotency_key")
			ks = append(ks, k)
		}
		return ks
	}
	second := &collect{ack: func(int) bool { return true }}
	r = startTail(t, cfg, env, second)
	r.want("3", "4") // from the first unacked line on
	if got, want := keys(second), keys(first)[2:]; !slices.Equal(got, want) {
		t.Fatalf("replayed keys %q, want %q", got, want)
	}
	r.stop()
	r = startTail(t, cfg, env, nil)
	r.want()
}

func TestTailStateDefaultsBesideGraph(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendTo(t, log, "1\n")
	r := startTail(t, packet.MapOf("paths", []any{log}), plugin.Env{NodeID: "tail", GraphDir: dir}, nil)
	r.want("1")
	r.stop()
	m, _ := filepath.Glob(filepath.Join(dir, ".schnitzel-state", "tail-*.tail.json"))
	if len(m) != 1 {
		t.Fatalf("state files %v", m)
	}
	st, ok, err := readState(m[0])
	if err != nil || !ok || len(st.Files) != 1 || st.Files[0].Offset != 2 || st.Files[0].Path != log {
		t.Fatalf("state %+v ok %v err %v", st, ok, err)
	}
}

func TestTailConfigErrors(t *testing.T) {
	reg := plugin.NewRegistry()
	Register(reg)
	e, _ := reg.Lookup(mod + "FileTailSource")
	tests := []struct {
		name string
		cfg  *packet.Map
		key  string
	}{
		{"no paths", packet.MapOf(), "paths"},
		{"bad glob", packet.MapOf("paths", []any{"a["}), "paths[0]"},
		{"zero poll", packet.MapOf("paths", []any{"a"}, "poll_interval_sec", 0.0), "poll_interval_sec"},
		{"bad format", packet.MapOf("paths", []any{"a"}, "format", "csv"), "format"},
		{"bad max", packet.MapOf("paths", []any{"a"}, "max_line_bytes", int64(0)), "max_line_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, errs := e.Decode(tt.cfg)
			found := false
			for _, fe := range errs {
				found = found || fe.Path == tt.key
			}
			if !found {
				t.Fatalf("errors %v, want one at %s", errs, tt.key)
			}
		})
	}
}
