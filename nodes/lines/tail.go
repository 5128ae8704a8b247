package lines

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// TailConfig is FileTailSource's config.
type TailConfig struct {
	Paths           []string       `yaml:"paths" required:"true" doc:"Files to follow: paths or globs (filepath.Match syntax, relative to the working directory); files that start matching later are picked up at the next poll." example:"/var/log/app/*.log"`
	StartAt         string         `yaml:"start_at" enum:"beginning,end" doc:"Where to start in a file found at the first poll of a node without a state file: beginning, or end (only lines written from now on). Files found later, and files known from the state file, are read from the beginning or their saved offset."`
	PollIntervalSec plugin.Seconds `yaml:"poll_interval_sec" doc:"How often the globs are expanded and the files checked for new lines, rotation and truncation."`
	StateDir        string         `yaml:"state_dir" doc:"Directory of the offsets file (<node id>-<hash of paths>.tail.json); empty: .schnitzel-state beside the graph file."`
	LineConfig      `yaml:",inline"`
}

// Validate implements the plugin config check.
func (c *TailConfig) Validate() error {
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, plugin.Errorf("paths", "paths must name at least one file or glob"))
	}
	for i, p := range c.Paths {
		if p == "" {
			errs = append(errs, plugin.Errorf(fmt.Sprintf("paths[%d]", i), "empty path"))
		} else if _, err := filepath.Match(p, ""); err != nil {
			errs = append(errs, plugin.Errorf(fmt.Sprintf("paths[%d]", i), "bad glob %q: %v", p, err))
		}
	}
	if d := c.PollIntervalSec.Duration(); d <= 0 || d > time.Hour {
		errs = append(errs, plugin.Errorf("poll_interval_sec", "poll_interval_sec must be > 0 and <= 3600 (got %v)", float64(c.PollIntervalSec)))
	}
	return errors.Join(append(errs, c.validate())...)
}

var tailMetricSpecs = append(slices.Clip(lineMetricSpecs),
	plugin.MetricSpec{Name: "rotations_total", Help: "Files that left their path (renamed by rotation or deleted): finished, then closed."},
	plugin.MetricSpec{Name: "truncations_total", Help: "Files whose content was replaced (copytruncate, an inode reused): read again from offset 0."},
	plugin.MetricSpec{Name: "files", Help: "Files open now.", Gauge: true},
)

func registerTail(r *plugin.Registry) {
	d := lineDefaults("")
	plugin.Register(r, plugin.Spec[TailConfig]{
		Name:    mod + "FileTailSource",
		Role:    plugin.RoleSource,
		Out:     []string{"*"},
		Summary: "Follow files like tail -F (globs, rename and copytruncate rotation), with offsets saved durably.",
		Description: `
Each complete line becomes one packet (see format) with meta file_path, file_offset (of the line's
first byte) and idempotency_key (tail:<dev>:<inode>:<generation>:<offset>:<crc32 of the line>), so
that a durable queue sink stores a line replayed after a crash once. A last line without its
newline waits until it is complete. A file renamed away (logrotate create) is read to its end, then
closed; the new file at the path is read from its start. A file that shrinks (copytruncate) is read
again from offset 0. A file that disappears is logged, not an error. The source runs until the run
stops.

Offsets are saved in the state file (written atomically) per device+inode and a fingerprint of the
first bytes: only for lines handed downstream, and when a committing sink follows (a
SqliteQueueSink), only for lines it has committed, so a restart neither skips nor (with the
queue's dedup by key) repeats lines. At a restart a file rotated while schnitzel was down is
looked for beside its old path (same device+inode) and finished first.`,
		Stability: plugin.Experimental,
		Defaults:  TailConfig{StartAt: "beginning", PollIntervalSec: 0.5, LineConfig: d},
		Metrics:   tailMetricSpecs,
		NewSource: func(c TailConfig, env plugin.Env) (plugin.Source, error) {
			sp := defaultStatePath(env.GraphDir, env.NodeID, c.Paths)
			if c.StateDir != "" {
				sp = filepath.Join(c.StateDir, stateName(env.NodeID, c.Paths))
			}
			cs := env.Counters()
			return &tailSource{cfg: c, env: env, log: env.Logger, statePath: sp,
				files: map[fileID]*tfile{}, warn: plugin.RateLog{Burst: 5},
				Counters: cs, m: newLineMetrics(cs), rotations: cs.Get("rotations_total"),
				truncations: cs.Get("truncations_total"), openFiles: cs.Get("files")}, nil
		},
	})
}

type tailSource struct {
	cfg       TailConfig
	env       plugin.Env
	log       *slog.Logger
	statePath string
	warn      plugin.RateLog

	// The metrics (tailMetricSpecs): lineMetrics, then these.
	*plugin.Counters
	m                      lineMetrics
	rotations, truncations *plugin.Counter
	openFiles              *plugin.Counter // the files gauge

	polls                    atomic.Int64 // finished polls: tests wait on it to see that nothing came
	started, hadState, first bool

	// mu guards files and every tfile: Run holds it except while it
	// emits, acks from a committing sink take it from their goroutine.
	mu        sync.Mutex
	files     map[fileID]*tfile
	dirty     bool
	lastSave  time.Time
	saveMu    sync.Mutex // held while the state file is written
	closed    bool
	readerBuf *lineReader
}

// tfile is one followed file.
type tfile struct {
	id     fileID
	path   string
	f      *os.File // nil: not open (known from the state only, or finished)
	gen    int64
	offset int64 // end of the last line read (handed on or dropped)
	// committed is what the state file gets: the end of the last line of
	// the unbroken run of lines handed on (and acked) from the start.
	committed int64
	fp        []byte
	orphan    bool      // no longer at a matching path: finish, then close
	lastSize  int64     // size at the previous poll
	grew      time.Time // when an orphan last grew: it is finished after orphanIdle without
	done      bool      // finished and closed: forgotten once nothing is pending
	// pend are the lines handed on, oldest first, whose ack is awaited
	// (only under a committing sink); pendBase numbers pend[0].
	pend     []pendLine
	pendBase int64
}

type pendLine struct {
	end   int64
	acked bool
}

// Start creates the state directory and reads the saved offsets.
func (s *tailSource) Start(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.statePath), 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	st, ok, err := readState(s.statePath)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hadState = ok
	for _, fs := range st.Files {
		fp, _ := hex.DecodeString(fs.FP)
		id := fileID{Dev: fs.Dev, Ino: fs.Ino}
		s.files[id] = &tfile{id: id, path: fs.Path, gen: fs.Gen, offset: fs.Offset, committed: fs.Offset, fp: fp}
	}
	s.started, s.first = true, true
	return nil
}

func (s *tailSource) Run(ctx context.Context, out plugin.Emitter) error {
	if ctx.Err() != nil || !s.started {
		return nil
	}
	defer s.save(true)
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := s.poll(ctx, out); err != nil {
			if errors.Is(err, plugin.ErrStop) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		tick.Reset(s.cfg.PollIntervalSec.Duration())
	}
}

// poll finds the files, reads what is new in each and saves the offsets.
func (s *tailSource) poll(ctx context.Context, out plugin.Emitter) error {
	s.mu.Lock()
	err := s.pollLocked(ctx, out)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.save(false)
	s.polls.Add(1)
	return nil
}

func (s *tailSource) pollLocked(ctx context.Context, out plugin.Emitter) error {
	if s.closed {
		return plugin.ErrStop
	}
	s.scan()
	s.first = false
	// orphans first: the rotated file is finished before the new one
	var order []*tfile
	for _, t := range s.files {
		if t.f != nil {
			order = append(order, t)
		}
	}
	slices.SortFunc(order, func(a, b *tfile) int {
		if a.orphan != b.orphan {
			if a.orphan {
				return -1
			}
			return 1
		}
		if a.path != b.path {
			return cmp.Compare(a.path, b.path)
		}
		return cmp.Compare(a.id.Ino, b.id.Ino)
	})
	for _, t := range order {
		if err := s.readFile(ctx, out, t); err != nil {
			return err
		}
	}
	return nil
}

// scan expands the globs: opens new files, marks those that left their
// path as orphans. Called with mu held.
func (s *tailSource) scan() {
	cur := map[fileID]string{}
	for _, g := range s.cfg.Paths {
		ms, _ := filepath.Glob(g) // the pattern was checked by Validate
		for _, p := range ms {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			id := idOf(fi, p)
			if _, ok := cur[id]; !ok {
				cur[id] = p
			}
		}
	}
	for id, t := range s.files {
		if t.done {
			continue
		}
		if p, ok := cur[id]; ok {
			if t.path != p && t.f != nil {
				s.log.Info("followed file renamed", "from", t.path, "to", p)
			}
			t.path = p
			continue
		}
		switch {
		case t.f != nil && !t.orphan:
			t.orphan, t.grew = true, time.Now()
			s.rotations.Add(1)
			if _, err := os.Stat(t.path); err == nil {
				s.log.Info("file rotated: finishing the old one", "path", t.path, "offset", t.offset)
			} else {
				s.log.Warn("followed file disappeared: finishing what is open", "path", t.path, "offset", t.offset)
			}
		case t.f == nil && s.first:
			// known from the state but not at a matching path: rotated
			// while we were down; finish it where it went
			if p := findSibling(t.path, id); p != "" && s.open(t, p) {
				t.orphan, t.grew = true, time.Now()
				s.log.Info("file rotated while stopped: finishing it", "path", p, "was", t.path, "offset", t.offset)
				continue
			}
			s.log.Warn("file in the state is gone; its unread lines, if any, are lost", "path", t.path, "offset", t.offset)
			t.done = true
			s.dirty = true
		case t.f == nil:
			t.done = true
			s.dirty = true
		}
	}
	for id, p := range cur {
		t := s.files[id]
		if t != nil && t.f != nil {
			continue
		}
		if t == nil || t.done {
			nt := &tfile{id: id, path: p}
			if t != nil {
				nt.gen = t.gen + 1 // an inode reused: other keys than the old file's
			}
			t = nt
			s.files[id] = t
			if s.first && !s.hadState && s.cfg.StartAt == "end" {
				if fi, err := os.Stat(p); err == nil {
					t.offset, t.committed = fi.Size(), fi.Size()
				}
			}
			s.dirty = true
		}
		s.open(t, p)
	}
}

// findSibling looks in dir(path) for the file with id.
func findSibling(path string, id fileID) string {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(p); err == nil && idOf(fi, p) == id && id != (fileID{}) {
			return p
		}
	}
	return ""
}

// open opens t at p and checks that it is still the file the state knew.
func (s *tailSource) open(t *tfile, p string) bool {
	f, err := os.Open(p)
	if err != nil {
		s.warn.Warn(s.log, "cannot open followed file", "path", p, "error", err)
		return false
	}
	fi, err := f.Stat()
	if err != nil || idOf(fi, p) != t.id {
		f.Close() // replaced between the glob and the open: next poll
		return false
	}
	t.f, t.path, t.orphan, t.lastSize = f, p, false, -1
	s.openFiles.Add(1)
	if !s.sameContent(t, fi.Size()) {
		s.replaced(t, "content differs from the saved fingerprint")
	}
	return true
}

// sameContent reports whether t still starts with its fingerprint and is
// not shorter than what was read.
func (s *tailSource) sameContent(t *tfile, size int64) bool {
	if size < t.offset {
		return false
	}
	if len(t.fp) == 0 {
		return true
	}
	buf := make([]byte, len(t.fp))
	n, _ := t.f.ReadAt(buf, 0)
	return bytes.Equal(buf[:n], t.fp)
}

// replaced starts t over: a copytruncate, or an inode reused.
func (s *tailSource) replaced(t *tfile, why string) {
	s.truncations.Add(1)
	s.log.Info("file truncated or replaced: reading it from the start", "path", t.path, "offset", t.offset, "why", why)
	t.gen++
	t.offset, t.committed, t.fp = 0, 0, nil
	t.pendBase += int64(len(t.pend)) // acks of the old content change nothing
	t.pend = nil
	s.dirty = true
}

// readFile hands on every complete line after t.offset. Called with mu
// held; releases it while emitting.
func (s *tailSource) readFile(ctx context.Context, out plugin.Emitter, t *tfile) error {
	fi, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("file %s: %w", t.path, err)
	}
	size := fi.Size()
	if !s.sameContent(t, size) {
		s.replaced(t, "size "+strconv.FormatInt(size, 10)+" below offset or first bytes changed")
	}
	// an orphan that stopped growing is finished: its last line is
	// emitted even without a newline, then it is closed. It is given a
	// while, for a writer that has not reopened its log yet.
	if size != t.lastSize {
		t.grew = time.Now()
	}
	final := t.orphan && time.Since(t.grew) >= s.orphanIdle()
	t.lastSize = size
	if size > t.offset {
		if err := s.readLines(ctx, out, t, size, final); err != nil {
			return err
		}
	}
	if len(t.fp) < fpMax && size > int64(len(t.fp)) {
		buf := make([]byte, min(size, fpMax))
		if n, _ := t.f.ReadAt(buf, 0); n > len(t.fp) {
			t.fp = buf[:n]
			s.dirty = true
		}
	}
	if final {
		t.f.Close()
		t.f = nil
		t.done = true
		s.openFiles.Add(-1)
		s.dirty = true
	}
	return nil
}

// orphanIdle is how long a rotated file must not grow to be finished:
// two polls, at least a second.
func (s *tailSource) orphanIdle() time.Duration {
	return max(2*s.cfg.PollIntervalSec.Duration(), time.Second)
}

func (s *tailSource) readLines(ctx context.Context, out plugin.Emitter, t *tfile, size int64, final bool) error {
	sr := io.NewSectionReader(t.f, t.offset, size-t.offset)
	if s.readerBuf == nil {
		s.readerBuf = newLineReader(sr, s.cfg.MaxLineBytes)
	} else {
		s.readerBuf.br.Reset(sr)
	}
	r := s.readerBuf
	sid := s.cfg.SourceID
	if sid == "" {
		sid = t.path
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line, n, complete, long, err := r.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("file %s offset %d: %w", t.path, t.offset, err)
		}
		if !complete && !final {
			return nil // the rest of the line is yet to be written
		}
		start, end := t.offset, t.offset+int64(n)
		payload, ok, derr := s.cfg.decode(&s.m, line, long)
		if derr != nil {
			return fmt.Errorf("file %s offset %d: %w", t.path, start, derr)
		}
		if !ok {
			t.offset = end
			s.handed(t, end, true)
			continue
		}
		key := fmt.Sprintf("tail:%d:%d:%d:%d:%08x", t.id.Dev, t.id.Ino, t.gen, start, crc32.ChecksumIEEE(line))
		p := packet.New(s.cfg.Kind, sid, payload, "", nil)
		p.Meta = packet.MapOf("file_path", t.path, "file_offset", start, "idempotency_key", key)
		if s.env.CommitDownstream {
			seq, gen := s.handed(t, end, false), t.gen
			p.Ack = func() { s.ack(t, gen, seq) }
		}
		saveDue := time.Since(s.lastSave) > time.Second
		s.mu.Unlock()
		if saveDue {
			s.save(false) // a long read does not wait for its end to save
		}
		err = out.Emit(p)
		s.mu.Lock()
		if s.closed {
			return plugin.ErrStop // Close took the files while we emitted
		}
		if err != nil {
			if s.env.CommitDownstream && len(t.pend) > 0 {
				t.pend = t.pend[:len(t.pend)-1] // not taken
			}
			return err
		}
		t.offset = end
		if !s.env.CommitDownstream {
			s.handed(t, end, true)
		}
	}
}

// handed records a line handed on (or dropped: done) ending at end. Under
// a committing sink an emitted line waits for its ack: it returns the
// number the ack names.
func (s *tailSource) handed(t *tfile, end int64, done bool) int64 {
	if !s.env.CommitDownstream {
		t.committed = end
		s.dirty = true
		return 0
	}
	seq := t.pendBase + int64(len(t.pend))
	t.pend = append(t.pend, pendLine{end: end, acked: done})
	s.advance(t)
	if n := len(t.pend); n >= pendWarn && n%pendWarn == 0 {
		s.warn.Warn(s.log, "offsets held back: lines handed on are not committed (does a node before the durable sink drop them?); a restart replays from the oldest",
			"path", t.path, "uncommitted_lines", n, "committed_offset", t.committed)
	}
	return seq
}

// ack is a committing sink's packet.Ack for line seq of generation gen.
func (s *tailSource) ack(t *tfile, gen, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := seq - t.pendBase
	if gen != t.gen || i < 0 || i >= int64(len(t.pend)) {
		return // acked before (fan-out) or of content since replaced
	}
	t.pend[i].acked = true
	s.advance(t)
}

// advance moves committed over the acked lines at the head of pend.
func (s *tailSource) advance(t *tfile) {
	k := 0
	for k < len(t.pend) && t.pend[k].acked {
		t.committed = t.pend[k].end
		k++
	}
	if k > 0 {
		t.pend = append(t.pend[:0], t.pend[k:]...)
		t.pendBase += int64(k)
		s.dirty = true
	}
}

// pendWarn is how many lines awaiting their ack make a warning (and every
// further multiple of it).
const pendWarn = 1 << 16

// save writes the state file if anything changed (always, with force).
// Called without mu: acks are not held up by the fsync. A failure is
// logged (rate-limited) and retried at the next save: lines go on flowing;
// a restart would replay more.
func (s *tailSource) save(force bool) error {
	s.saveMu.Lock() // one write at a time: an older snapshot never lands last
	defer s.saveMu.Unlock()
	s.mu.Lock()
	if !s.started || (!s.dirty && !force) {
		s.mu.Unlock()
		return nil
	}
	st := stateFile{Version: stateVersion, Paths: s.cfg.Paths}
	for id, t := range s.files {
		if t.done && len(t.pend) == 0 {
			delete(s.files, id)
			continue
		}
		st.Files = append(st.Files, fileState{Path: t.path, Dev: id.Dev, Ino: id.Ino, Gen: t.gen, Offset: t.committed, FP: hex.EncodeToString(t.fp)})
	}
	slices.SortFunc(st.Files, func(a, b fileState) int { return cmp.Compare(a.Path, b.Path) })
	s.lastSave, s.dirty = time.Now(), false
	s.mu.Unlock()
	err := writeState(s.statePath, st)
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.warn.Warn(s.log, "cannot save tail offsets", "path", s.statePath, "error", err)
	}
	return err
}

// Close saves the offsets (acks that came in during the drain included)
// and closes the files.
func (s *tailSource) Close(context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.save(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.files {
		if t.f != nil {
			t.f.Close()
			t.f = nil
			s.openFiles.Add(-1)
		}
	}
	if err != nil {
		return fmt.Errorf("save offsets to %s: %w", s.statePath, err)
	}
	return nil
}
