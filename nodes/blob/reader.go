package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// ReaderConfig is FileRefToBytesNode's config.
type ReaderConfig struct {
	Dir            string `yaml:"dir" required:"true" example:"blobs" doc:"The only directory refs may point into (upstream had no such key and read any file: D-BLOB-1). A ref's path, after cleaning and following symlinks, must lie inside it; the file is opened through os.Root, so a symlink swapped in after the check cannot lead out either. Must exist at start."`
	OutputKind     string `yaml:"output_kind" doc:"Kind of the emitted packets."`
	MaxBytes       int64  `yaml:"max_bytes" advanced:"true" doc:"Largest file read, in bytes; a larger one is refused (refused_total)."`
	VerifySHA256   bool   `yaml:"verify_sha256" doc:"Check the content against the ref's sha256 and size_bytes when the ref has them; a mismatch fails the packet (checksum_mismatch_total)."`
	RequireSHA256  bool   `yaml:"require_sha256" advanced:"true" doc:"Refuse refs without a sha256 (written with compute_sha256 false)."`
	AllowHardlinks bool   `yaml:"allow_hardlinks" advanced:"true" doc:"Read files with more than one hard link. Off: refused, since a hard link in dir to a file elsewhere (made by someone who can write in dir) would pass the path check; BytesToFileRefNode's blobs have one link."`
}

// Validate implements the plugin config check.
func (c *ReaderConfig) Validate() error {
	errs := []error{checkDir(c.Dir), checkMaxBytes(c.MaxBytes)}
	if strings.TrimSpace(c.OutputKind) == "" {
		errs = append(errs, plugin.Errorf("output_kind", "output_kind must not be empty"))
	}
	return errors.Join(errs...)
}

func registerReader(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[ReaderConfig]{
		Name: mod + "FileRefToBytesNode",
		Role: plugin.RoleNode,
		In:   []string{"bytes_ref"},
		// output_kind chooses the kind (default bytes): declaring only
		// "bytes" would contradict it (upstream's D-BLOB-2).
		Out:        []string{"*"},
		InProfile:  plugin.ProfileRef,
		OutProfile: plugin.ProfileInproc,
		Summary:    "Read the file a bytes_ref packet names, inside dir only, and emit its bytes (kind output_kind).",
		Description: `
The payload must be upstream's {ref: {scheme: file, path: ...}}. The path must lie inside dir
after cleaning and resolving symlinks, and be a regular file of at most max_bytes; the content
must match the ref's size_bytes and sha256 when present (verify_sha256). A ref that fails a
check or names a missing file fails that packet alone (counted; the run ends degraded), so a
queue or HTTP source cannot make the graph read files outside dir (SSH keys, /etc).`,
		Defaults: ReaderConfig{OutputKind: "bytes", MaxBytes: DefaultMaxBytes, VerifySHA256: true},
		Metrics: []plugin.MetricSpec{
			{Name: "read_total", Help: "Blobs read and emitted."},
			{Name: "bytes_read_total", Help: "Bytes of the blobs read."},
			{Name: "refused_total", Help: "Refs refused: malformed, not scheme file, outside dir, not a regular file, or over max_bytes.", Loss: true},
			{Name: "missing_total", Help: "Refs whose file does not exist (or could not be opened).", Loss: true},
			{Name: "checksum_mismatch_total", Help: "Blobs whose content did not match the ref's sha256 or size_bytes.", Loss: true},
		},
		NewProcessor: func(c ReaderConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			return &reader{cfg: c, env: env, warn: plugin.RateLog{Burst: 5}, Counters: cs,
				read: cs.Get("read_total"), bytesRead: cs.Get("bytes_read_total"), refused: cs.Get("refused_total"),
				missing: cs.Get("missing_total"), mismatch: cs.Get("checksum_mismatch_total")}, nil
		},
	})
}

// afterCheck, when set (by tests), runs between the path check and the
// open: the window in which an attacker could swap in a symlink.
var afterCheck func(rel string)

type reader struct {
	cfg  ReaderConfig
	env  plugin.Env
	warn plugin.RateLog

	mu        sync.Mutex
	root      *os.Root
	abs, real string // dir as configured (absolute) and with symlinks resolved

	*plugin.Counters
	read, bytesRead, refused, missing, mismatch *plugin.Counter
}

func (r *reader) Start(context.Context) error {
	abs, err := absDir(r.cfg.Dir)
	var real string
	if err == nil {
		real, err = filepath.EvalSymlinks(abs)
	}
	var root *os.Root
	if err == nil {
		root, err = os.OpenRoot(real)
	}
	if err != nil {
		return fmt.Errorf("%s: blob dir %s: %w", r.env.NodeID, r.cfg.Dir, err)
	}
	r.mu.Lock()
	r.root, r.abs, r.real = root, abs, real
	r.mu.Unlock()
	return nil
}

func (r *reader) Close(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.root == nil {
		return nil
	}
	err := r.root.Close()
	r.root = nil
	return err
}

// LargePackets implements plugin.LargePackets: bytes payloads of up to
// max_bytes each; the runtime bounds inboxes by their bytes (packet.Weight).
func (*reader) LargePackets() {}

func (r *reader) fail(c *plugin.Counter, p *packet.Packet, format string, args ...any) error {
	c.Add(1)
	err := fmt.Errorf("%s: packet %s: %s", r.env.NodeID, p.ID, fmt.Sprintf(format, args...))
	r.warn.Warn(r.env.Logger, "blob ref not read", "packet_id", p.ID, "err", err.Error())
	return plugin.DropPacket(err)
}

// inside returns p relative to base when it lies inside it.
func inside(base, p string) (string, bool) {
	rel, err := filepath.Rel(base, p)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

func (r *reader) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	payload, ok := p.Payload.(*packet.Map)
	if !ok {
		return r.fail(r.refused, p, "expected payload {ref: {...}}, got %T", p.Payload)
	}
	rv, _ := payload.Get("ref")
	ref, ok := rv.(*packet.Map)
	if !ok {
		return r.fail(r.refused, p, "expected payload.ref as a mapping, got %T", rv)
	}
	if s, _ := ref.Get("scheme"); s != "file" {
		return r.fail(r.refused, p, "unsupported ref scheme %s", packet.PyStr(s))
	}
	pv, _ := ref.Get("path")
	path, ok := pv.(string)
	if !ok || strings.TrimSpace(path) == "" {
		return r.fail(r.refused, p, "expected payload.ref.path as a non-empty string, got %T", pv)
	}
	want, err := wantedSum(ref, r.cfg.RequireSHA256)
	if err != nil {
		return r.fail(r.refused, p, "%v", err)
	}
	size, err := wantedSize(ref)
	if err != nil {
		return r.fail(r.refused, p, "%v", err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.root == nil {
		return fmt.Errorf("%s: not started", r.env.NodeID)
	}
	abs, err := filepath.Abs(path) // relative refs: against the working directory, as upstream
	if err != nil {
		return r.fail(r.refused, p, "path %q: %v", path, err)
	}
	rel, ok := inside(r.real, abs)
	if !ok {
		rel, ok = inside(r.abs, abs)
	}
	if !ok {
		return r.fail(r.refused, p, "path %q is outside dir %s", path, r.cfg.Dir)
	}
	// Follow symlinks for a clear error; the open through os.Root below
	// is what holds even if the tree changes in between.
	resolved, err := filepath.EvalSymlinks(filepath.Join(r.real, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return r.fail(r.missing, p, "blob %q does not exist", path)
	}
	if err != nil {
		return r.fail(r.missing, p, "blob %q: %v", path, err)
	}
	if _, ok := inside(r.real, resolved); !ok {
		return r.fail(r.refused, p, "path %q leads outside dir %s (symlink to %s)", path, r.cfg.Dir, resolved)
	}
	if afterCheck != nil {
		afterCheck(rel)
	}
	// O_NONBLOCK: a FIFO planted in dir cannot block the node (it is
	// refused below as not a regular file).
	f, err := r.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return r.fail(r.missing, p, "blob %q does not exist", path)
	}
	if err != nil {
		return r.fail(r.refused, p, "open %q inside dir %s: %v", path, r.cfg.Dir, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return r.fail(r.missing, p, "blob %q: %v", path, err)
	}
	if !st.Mode().IsRegular() {
		return r.fail(r.refused, p, "blob %q is not a regular file (%s)", path, st.Mode().Type())
	}
	if n := links(st); n > 1 && !r.cfg.AllowHardlinks {
		return r.fail(r.refused, p, "blob %q has %d hard links (a link to a file outside dir would pass the path check; allow_hardlinks)", path, n)
	}
	if st.Size() > r.cfg.MaxBytes {
		return r.fail(r.refused, p, "blob %q has %d bytes, over max_bytes (%d)", path, st.Size(), r.cfg.MaxBytes)
	}
	data, err := readAll(io.LimitReader(f, r.cfg.MaxBytes+1), st.Size())
	if err != nil {
		return r.fail(r.missing, p, "read %q: %v", path, err)
	}
	if int64(len(data)) > r.cfg.MaxBytes {
		return r.fail(r.refused, p, "blob %q grew over max_bytes (%d) while read", path, r.cfg.MaxBytes)
	}
	if r.cfg.VerifySHA256 {
		if size >= 0 && int64(len(data)) != size {
			return r.fail(r.mismatch, p, "blob %q has %d bytes, the ref says size_bytes %d", path, len(data), size)
		}
		if want != "" {
			if got := sum(data); got != want {
				return r.fail(r.mismatch, p, "blob %q has sha256 %s, the ref says %s", path, got, want)
			}
		}
	}
	r.read.Add(1)
	r.bytesRead.Add(int64(len(data)))
	c := p.Copy()
	c.Kind = r.cfg.OutputKind
	c.Payload = data
	return out.Emit(c)
}

// wantedSum returns the ref's sha256 in lowercase hex, "" when it has none.
func wantedSum(ref *packet.Map, required bool) (string, error) {
	v, ok := ref.Get("sha256")
	if !ok || v == nil {
		if required {
			return "", errors.New("the ref has no sha256 (require_sha256)")
		}
		return "", nil
	}
	s, ok := v.(string)
	s = strings.ToLower(strings.TrimSpace(s))
	if !ok || len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return "", fmt.Errorf("payload.ref.sha256 is not 64 hex digits: %s", packet.PyStr(v))
	}
	return s, nil
}

// wantedSize returns the ref's size_bytes, -1 when it has none.
func wantedSize(ref *packet.Map) (int64, error) {
	v, ok := ref.Get("size_bytes")
	if !ok || v == nil {
		return -1, nil
	}
	switch n := v.(type) {
	case int64:
		if n >= 0 {
			return n, nil
		}
	case int:
		if n >= 0 {
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("payload.ref.size_bytes is not a non-negative integer: %s", packet.PyStr(v))
}

// readAll is io.ReadAll with a first buffer of the file's size (and one
// byte to see the end), so a large blob is read without regrowing.
func readAll(rd io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, size+1)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}
