package ionodes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// JSONLConfig is JsonlSink's config: upstream's keys plus mode, fsync and
// size rotation.
type JSONLConfig struct {
	Path        string `yaml:"path" required:"true" doc:"File to append to, relative to the working directory; parent directories are created."`
	Body        string `yaml:"body" doc:"packet: one {packet_id, ts, kind, source_id, payload, meta} object per line; payload: the payload only."`
	Forward     bool   `yaml:"forward" doc:"Emit each packet downstream after its line is written (and synced, per fsync)."`
	EnsureASCII bool   `yaml:"ensure_ascii" doc:"Escape non-ASCII characters as \\uXXXX (Python's ensure_ascii)."`
	Flush       bool   `yaml:"flush" doc:"Upstream's per-line flush. Kept for compatibility: lines are always written with one write per batch, never held in a buffer."`
	Mode        string `yaml:"mode" enum:"append,overwrite" doc:"append keeps what the file holds (upstream); overwrite truncates it when the node starts."`
	Fsync       string `yaml:"fsync" enum:"always,batch,never" doc:"always: fsync after every line; batch: group commit, one fsync in flight at a time covering every batch written before it (and on close); never: leave it to the OS."`
	MaxBytes    int64  `yaml:"max_bytes" doc:"Rotate before a line would make the file larger than this; 0 never rotates. Lines are never split."`
	MaxFiles    int    `yaml:"max_files" doc:"Rotated files kept (path.1 newest ... path.N oldest); 0 keeps none."`
}

// Validate normalises body as upstream does and checks the additions.
func (c *JSONLConfig) Validate() error {
	var errs []error // every problem at once
	c.Path = strings.TrimSpace(c.Path)
	if c.Path == "" {
		errs = append(errs, plugin.Errorf("path", "must not be empty"))
	}
	c.Body = strings.ToLower(strings.TrimSpace(c.Body))
	if c.Body == "" {
		c.Body = "packet"
	}
	if c.Body != "payload" && c.Body != "packet" {
		errs = append(errs, plugin.Errorf("body", "must be 'payload' or 'packet', got %q", c.Body))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, plugin.Errorf("max_bytes", "must be >= 0 (0 = no rotation), got %d", c.MaxBytes))
	}
	if c.MaxFiles < 0 {
		errs = append(errs, plugin.Errorf("max_files", "must be >= 0, got %d", c.MaxFiles))
	}
	return errors.Join(errs...)
}

func registerJSONL(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[JSONLConfig]{
		Name: modFile + "JsonlSink",
		Role: plugin.RoleSink,
		// upstream REQUIRES_PORTABLE_PAYLOAD: frames cannot be written or stored
		InProfile: plugin.ProfileJSON, OutProfile: plugin.ProfileJSON,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "Append one JSON line per packet to a file, with an fsync policy and size rotation.",
		Description: "Lines are the bytes upstream writes: json.dumps with `, `/`: ` separators and ensure_ascii as " +
			"configured, then a newline. Acts per batch: the lines of one batch are written with one write. Under " +
			"`fsync: batch` with `forward`, the batch is made durable with one fsync before any of it is forwarded; " +
			"without `forward` the fsync runs beside the writing (group commit: one fsync in flight, covering " +
			"every batch written before it started) and the input's end waits for the last one. With max_bytes the " +
			"file is renamed to path.1 (older ones shift up to path.<max_files>) before a line would overflow it.",
		Defaults: JSONLConfig{Body: "packet", Flush: true, Mode: "append", Fsync: fsyncBatch, MaxFiles: 5},
		Metrics: []plugin.MetricSpec{
			{Name: "written_total", Help: "Packets written as JSON lines (upstream's counter)."},
			{Name: "rotated_total", Help: "Files rotated at max_bytes."},
		},
		NewBatchProcessor: func(c JSONLConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			cs := env.Counters()
			return &jsonlSink{cfg: c, env: env, style: packet.JSONOptions{EnsureASCII: c.EnsureASCII},
				Counters: cs, written: cs.Get("written_total"), rotated: cs.Get("rotated_total")}, nil
		},
	})
}

type jsonlSink struct {
	cfg   JSONLConfig
	env   plugin.Env
	style packet.JSONOptions

	mu   sync.Mutex // guards f and size: Close may come from another goroutine
	f    *os.File
	size int64
	buf  []byte
	ends []int // end offset in buf of each line of the batch

	*plugin.Counters
	written *plugin.Counter // upstream's written_total
	rotated *plugin.Counter

	// Group commit (fsync batch without forward): the node goroutine
	// writes and kicks; syncer fsyncs whatever was written meanwhile, so
	// writing never waits for the disk and one fsync covers many batches.
	dirty   atomic.Bool
	kick    chan struct{}         // cap 1: "there is something to sync"
	flushes chan chan error       // Flush: sync now and report
	stop    chan struct{}         // closed by Close
	done    chan struct{}         // closed when syncer returns
	syncErr atomic.Pointer[error] // first fsync failure: fails the next batch
	stopOne sync.Once
}

// groupCommit reports whether fsyncs run beside the writing: only when no
// packet waits for them (forwarded packets must follow their fsync).
func (s *jsonlSink) groupCommit() bool { return s.cfg.Fsync == fsyncBatch && !s.cfg.Forward }

// Start creates the parent directories and opens the file, so that a bad
// path fails the run before any packet is taken.
func (s *jsonlSink) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		return nil
	}
	path := s.cfg.Path
	if err := os.MkdirAll(parentDir(path), 0o755); err != nil {
		return fmt.Errorf("jsonl sink: create parent directory of %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("jsonl sink: path %s is a directory, not a file", path)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if s.cfg.Mode == "overwrite" {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("jsonl sink: open %s for writing: %w", path, unwrapPathError(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("jsonl sink: stat %s: %w", path, err)
	}
	s.f, s.size = f, st.Size()
	if s.cfg.Fsync != fsyncNever {
		if err := syncDir(parentDir(path)); err != nil {
			return err
		}
	}
	if s.groupCommit() {
		s.kick, s.flushes = make(chan struct{}, 1), make(chan chan error)
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.syncer()
	}
	return nil
}

// syncer runs the group commit until Close.
func (s *jsonlSink) syncer() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
			s.syncDirty()
		case reply := <-s.flushes:
			s.syncDirty()
			reply <- s.failed()
		}
	}
}

// syncDirty fsyncs the current file if anything was written since the last
// fsync began. The file is read under mu but synced outside it, so the next
// write does not wait for the disk; a rotation may close that file meanwhile,
// after syncing it itself, which is why ErrClosed is not a failure.
func (s *jsonlSink) syncDirty() {
	if !s.dirty.Swap(false) {
		return
	}
	s.mu.Lock()
	f := s.f
	s.mu.Unlock()
	if f == nil {
		return
	}
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		err = fmt.Errorf("jsonl sink: fsync %s: %w", s.cfg.Path, unwrapPathError(err))
		s.syncErr.CompareAndSwap(nil, &err)
	}
}

func (s *jsonlSink) failed() error {
	if e := s.syncErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Flush waits until everything written is synced (the input ended).
func (s *jsonlSink) Flush(ctx context.Context, _ plugin.Emitter) error {
	if s.flushes == nil {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case s.flushes <- reply:
	case <-s.done:
		return s.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopSyncer ends the group commit goroutine (Close; safe to call twice).
func (s *jsonlSink) stopSyncer() {
	if s.stop == nil {
		return
	}
	s.stopOne.Do(func() { close(s.stop) })
	<-s.done
}

// unwrapPathError keeps the reason of an *fs.PathError, whose message
// would repeat the path we already name.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ProcessBatch encodes the whole batch first, so a packet that is not JSON
// fails the run (as upstream's TypeError) before anything of the batch is
// written; then writes, syncs per policy, and only then forwards.
func (s *jsonlSink) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	b := s.buf[:0]
	ends := s.ends[:0]
	var err error
	for _, p := range batch {
		if b, err = appendRecord(b, p, s.cfg.Body == "packet", s.style); err != nil {
			return fmt.Errorf("jsonl sink %s: %w", s.cfg.Path, err)
		}
		b = append(b, '\n')
		ends = append(ends, len(b))
	}
	s.buf, s.ends = b[:0], ends[:0]
	if cap(s.buf) > 4<<20 {
		s.buf = nil // do not keep a huge buffer after one large batch
	}
	if err := s.failed(); err != nil {
		return err
	}
	if err := s.write(b, ends); err != nil {
		return err
	}
	s.written.Add(int64(len(batch)))
	if s.kick != nil {
		s.dirty.Store(true)
		select {
		case s.kick <- struct{}{}:
		default: // a kick is pending: that fsync will cover these lines too
		}
	}
	if s.cfg.Forward {
		for _, p := range batch {
			if err := out.Emit(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// write appends the lines b (line i ends at ends[i]), rotating between
// lines when max_bytes says so, with one write per run of lines that goes
// into one file.
func (s *jsonlSink) write(b []byte, ends []int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("jsonl sink %s: not open", s.cfg.Path)
	}
	always := s.cfg.Fsync == fsyncAlways
	start := 0 // first byte not yet written
	segEnd := 0
	flush := func() error {
		if segEnd == start {
			return nil
		}
		n, err := s.f.Write(b[start:segEnd])
		s.size += int64(n)
		if err != nil {
			return fmt.Errorf("jsonl sink: write %s: %w", s.cfg.Path, unwrapPathError(err))
		}
		start = segEnd
		return nil
	}
	lineStart := 0
	for _, end := range ends {
		lineLen := int64(end - lineStart)
		pending := int64(segEnd - start)
		if s.cfg.MaxBytes > 0 && s.size+pending > 0 && s.size+pending+lineLen > s.cfg.MaxBytes {
			if err := flush(); err != nil {
				return err
			}
			if err := s.rotate(); err != nil {
				return err
			}
		}
		segEnd = end
		lineStart = end
		if always {
			if err := flush(); err != nil {
				return err
			}
			if err := s.sync(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if s.cfg.Fsync == fsyncBatch && !s.groupCommit() {
		return s.sync()
	}
	return nil
}

func (s *jsonlSink) sync() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("jsonl sink: fsync %s: %w", s.cfg.Path, unwrapPathError(err))
	}
	return nil
}

// rotate closes the full file (synced unless fsync is never), shifts
// path.i to path.i+1, drops what falls beyond max_files, and opens a new
// empty path. Called with mu held.
func (s *jsonlSink) rotate() error {
	path := s.cfg.Path
	if s.cfg.Fsync != fsyncNever {
		if err := s.sync(); err != nil {
			return err
		}
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("jsonl sink: close %s for rotation: %w", path, unwrapPathError(err))
	}
	s.f = nil
	if s.cfg.MaxFiles == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("jsonl sink: rotate %s: %w", path, err)
		}
	} else {
		for i := s.cfg.MaxFiles - 1; i >= 1; i-- {
			from, to := path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1)
			if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("jsonl sink: rotate %s: %w", path, err)
			}
		}
		if err := os.Rename(path, path+".1"); err != nil {
			return fmt.Errorf("jsonl sink: rotate %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("jsonl sink: open %s after rotation: %w", path, unwrapPathError(err))
	}
	s.f, s.size = f, 0
	s.rotated.Add(1)
	if s.cfg.Fsync != fsyncNever {
		return syncDir(parentDir(path))
	}
	return nil
}

// Close syncs (unless fsync is never) and closes the file. Safe to call twice.
func (s *jsonlSink) Close(context.Context) error {
	s.stopSyncer()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	var errs []error
	if s.cfg.Fsync != fsyncNever {
		if err := s.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("jsonl sink: fsync %s: %w", s.cfg.Path, unwrapPathError(err)))
		}
	}
	if err := s.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("jsonl sink: close %s: %w", s.cfg.Path, unwrapPathError(err)))
	}
	s.f = nil
	return errors.Join(errs...)
}

var (
	_ plugin.BatchProcessor = (*jsonlSink)(nil)
	_ plugin.Starter        = (*jsonlSink)(nil)
	_ plugin.Closer         = (*jsonlSink)(nil)
	_ plugin.Metrics        = (*jsonlSink)(nil)
	_ plugin.Flusher        = (*jsonlSink)(nil)
)
