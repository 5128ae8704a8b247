package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

// WriterConfig is BytesToFileRefNode's config.
type WriterConfig struct {
	Dir           string `yaml:"dir" required:"true" example:"blobs" doc:"Directory for the blobs, relative to the working directory (upstream: to the repo root); created at start (mode 0750). The refs carry its absolute path with symlinks resolved."`
	Filename      string `yaml:"filename" doc:"File name template under dir, fields {source_id} and {packet_id} (Python str.format; {{ }} for braces). A field value that is not a plain name component (letters, digits, . _ -) is replaced by h- and a hash of it, so packet fields cannot leave dir; leading slashes are dropped."`
	ComputeSHA256 bool   `yaml:"compute_sha256" doc:"Record the sha256 of the content in the ref (FileRefToBytesNode checks it)."`
	ContentType   string `yaml:"content_type" example:"image/jpeg" doc:"Informational content_type for the ref; empty writes null."`
	Mode          string `yaml:"mode" example:"0640" doc:"Permission bits of the blob files: 0600 (owner only) or 0640 (and the group: a reader running as another user of the group). YAML's unquoted 0640 (octal, 416) is understood too."`
	Overwrite     bool   `yaml:"overwrite" advanced:"true" doc:"Replace a blob that exists with other content (atomically). Off: such a packet is refused; a blob with the same content (a redelivered packet) is kept and referenced."`
	MaxBytes      int64  `yaml:"max_bytes" advanced:"true" doc:"Largest payload written, in bytes; a larger one is refused (refused_total)."`
	Fsync         bool   `yaml:"fsync" advanced:"true" doc:"fsync each blob and its directory before the ref goes on, so a ref that reached a durable queue never outlives its blob in a power cut. Off: still atomic against crashes of the process, about 4x faster for small blobs."`
}

// Validate implements the plugin config check.
func (c *WriterConfig) Validate() error {
	errs := []error{checkDir(c.Dir), checkMaxBytes(c.MaxBytes)}
	switch c.Mode {
	case "0600", "600", "384": // 384: YAML 1.1 reads an unquoted 0600 as octal
		c.Mode = "0600"
	case "0640", "640", "416":
		c.Mode = "0640"
	default:
		errs = append(errs, plugin.Errorf("mode", "mode must be 0600 or 0640, got %q", c.Mode))
	}
	if segs, err := parseTemplate(c.Filename); err != nil {
		errs = append(errs, plugin.Errorf("filename", "%v", err))
	} else if _, err := render(segs, "src", "id"); err != nil {
		errs = append(errs, plugin.Errorf("filename", "%v", err))
	}
	return errors.Join(errs...)
}

func registerWriter(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[WriterConfig]{
		Name:       mod + "BytesToFileRefNode",
		Role:       plugin.RoleNode,
		In:         []string{"bytes"},
		Out:        []string{"bytes_ref"},
		InProfile:  plugin.ProfileInproc,
		OutProfile: plugin.ProfileRef,
		Summary:    "Write a bytes payload to a file under dir and emit a JSON file reference (kind bytes_ref).",
		Description: `
The payload ([]byte) is written to dir/filename atomically: a temporary file in the same
directory, fsync, then a hard link (or a rename with overwrite) to the final name and an fsync
of the directory, so a reader never sees a partial blob. The packet goes on with kind bytes_ref
and upstream's payload {ref: {scheme: file, path, content_type, size_bytes, sha256}}, which is
JSON and can cross a SqliteQueueSink or an HTTP hop. A payload that is not bytes or is larger
than max_bytes, and a name taken by other content, fail that packet alone (refused_total; the
run ends degraded). Blobs are not deleted: cleanup (a TTL job, say) is the operator's.`,
		Defaults: WriterConfig{Filename: "{source_id}/{packet_id}.bin", ComputeSHA256: true, Mode: "0600", MaxBytes: DefaultMaxBytes, Fsync: true},
		Metrics: []plugin.MetricSpec{
			{Name: "written_total", Help: "Blobs written (new files)."},
			{Name: "bytes_written_total", Help: "Bytes of the blobs written."},
			{Name: "existing_total", Help: "Packets whose blob already existed with the same content (a redelivery): referenced, not written again."},
			{Name: "refused_total", Help: "Packets refused: payload not bytes, larger than max_bytes, or the name taken by other content.", Loss: true},
			{Name: "write_errors_total", Help: "Packets whose blob could not be written (disk full, permissions): failed and nacked.", Loss: true},
		},
		NewProcessor: func(c WriterConfig, env plugin.Env) (plugin.Processor, error) {
			segs, err := parseTemplate(c.Filename)
			if err != nil {
				return nil, fmt.Errorf("%s: filename: %w", env.NodeID, err)
			}
			mode := os.FileMode(0o600)
			if c.Mode == "0640" {
				mode = 0o640
			}
			cs := env.Counters()
			return &writer{cfg: c, env: env, segs: segs, mode: mode, warn: plugin.RateLog{Burst: 5}, Counters: cs,
				written: cs.Get("written_total"), bytesWritten: cs.Get("bytes_written_total"), existing: cs.Get("existing_total"),
				refused: cs.Get("refused_total"), writeErrs: cs.Get("write_errors_total")}, nil
		},
	})
}

type writer struct {
	cfg  WriterConfig
	env  plugin.Env
	segs []segment
	mode os.FileMode
	warn plugin.RateLog

	mu   sync.Mutex // guards root against a Close during Process
	root *os.Root
	real string // dir, absolute with symlinks resolved: the refs' prefix

	*plugin.Counters
	written, bytesWritten, existing, refused, writeErrs *plugin.Counter
}

func (w *writer) Start(context.Context) error {
	dir, err := absDir(w.cfg.Dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o750)
	}
	if err == nil {
		w.real, err = filepath.EvalSymlinks(dir)
	}
	var root *os.Root
	if err == nil {
		root, err = os.OpenRoot(w.real)
	}
	if err != nil {
		return fmt.Errorf("%s: blob dir %s: %w", w.env.NodeID, w.cfg.Dir, err)
	}
	w.mu.Lock()
	w.root = root
	w.mu.Unlock()
	return nil
}

func (w *writer) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.root == nil {
		return nil
	}
	err := w.root.Close()
	w.root = nil
	return err
}

// LargePackets implements plugin.LargePackets: bytes payloads of up to
// max_bytes each; the runtime bounds inboxes by their bytes (packet.Weight).
func (*writer) LargePackets() {}

func (w *writer) refuse(p *packet.Packet, format string, args ...any) error {
	w.refused.Add(1)
	err := fmt.Errorf("%s: packet %s: %s", w.env.NodeID, p.ID, fmt.Sprintf(format, args...))
	w.warn.Warn(w.env.Logger, "blob refused", "packet_id", p.ID, "err", err.Error())
	return plugin.DropPacket(err)
}

func (w *writer) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	data, ok := p.Payload.([]byte)
	if !ok {
		return w.refuse(p, "expected a bytes payload, got %T", p.Payload)
	}
	if int64(len(data)) > w.cfg.MaxBytes {
		return w.refuse(p, "payload of %d bytes is over max_bytes (%d)", len(data), w.cfg.MaxBytes)
	}
	rel, err := render(w.segs, p.SourceID, p.ID)
	if err != nil || rel == "." {
		return w.refuse(p, "file name: %v", err)
	}
	digest := sum(data)
	w.mu.Lock()
	root := w.root
	if root == nil {
		w.mu.Unlock()
		return fmt.Errorf("%s: not started", w.env.NodeID)
	}
	existed, err := w.store(root, rel, data, digest)
	w.mu.Unlock()
	switch {
	case errors.Is(err, errTaken):
		return w.refuse(p, "%s exists with other content (set overwrite to replace it)", rel)
	case err != nil:
		w.writeErrs.Add(1)
		err = fmt.Errorf("%s: packet %s: write %s: %w", w.env.NodeID, p.ID, rel, err)
		w.warn.Warn(w.env.Logger, "blob write failed", "packet_id", p.ID, "err", err.Error())
		return plugin.DropPacket(err)
	case existed:
		w.existing.Add(1)
	default:
		w.written.Add(1)
		w.bytesWritten.Add(int64(len(data)))
	}
	ref := packet.NewMap(5)
	ref.Set("scheme", "file")
	ref.Set("path", filepath.Join(w.real, rel))
	if w.cfg.ContentType != "" {
		ref.Set("content_type", w.cfg.ContentType)
	} else {
		ref.Set("content_type", nil)
	}
	ref.Set("size_bytes", int64(len(data)))
	if w.cfg.ComputeSHA256 {
		ref.Set("sha256", digest)
	}
	c := p.Copy()
	c.Kind = "bytes_ref"
	c.Payload = packet.MapOf("ref", ref)
	return out.Emit(c)
}

var errTaken = errors.New("name taken by other content")

// store writes data to rel under root atomically. It reports existed when
// rel already held exactly data.
func (w *writer) store(root *os.Root, rel string, data []byte, digest string) (existed bool, err error) {
	dir := filepath.Dir(rel)
	if dir != "." {
		if err := root.MkdirAll(dir, 0o750); err != nil {
			return false, err
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+filepath.Base(rel)+"-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, w.mode)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || existed {
			_ = root.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(w.mode) // whatever the umask
	}
	if err == nil && w.cfg.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	if w.cfg.Overwrite {
		if same, _ := sameContent(root, rel, digest); same {
			return true, nil
		}
		err = root.Rename(tmp, rel)
	} else {
		err = root.Link(tmp, rel) // fails when rel exists: never clobbers
		if noLinks(err) {
			// a file system without hard links: check, then rename (a
			// concurrent writer of the same name could slip in between)
			if _, serr := root.Lstat(rel); serr == nil {
				err = fs.ErrExist
			} else if errors.Is(serr, fs.ErrNotExist) {
				if err = root.Rename(tmp, rel); err == nil {
					return false, w.syncDir(root, dir)
				}
			}
		}
		if errors.Is(err, fs.ErrExist) {
			same, serr := sameContent(root, rel, digest)
			if serr != nil {
				return false, serr
			}
			if !same {
				return false, errTaken
			}
			// a crash between link and remove leaves a temporary file
			// linked to the blob (2 links: the reader refuses it)
			removeStale(root, dir, filepath.Base(rel), tmp)
			return true, nil
		}
		if err == nil {
			err = root.Remove(tmp)
		}
	}
	if err != nil {
		return false, err
	}
	return false, w.syncDir(root, dir)
}

func sameContent(root *os.Root, rel, digest string) (bool, error) {
	f, err := root.Open(rel)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == digest, nil
}

// noLinks reports whether err says the file system cannot hard-link.
func noLinks(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EMLINK) || errors.Is(err, syscall.EXDEV)
}

func (w *writer) syncDir(root *os.Root, dir string) error {
	if !w.cfg.Fsync {
		return nil
	}
	return syncDir(root, dir)
}

// removeStale removes the temporary files of name in dir other than keep.
func removeStale(root *os.Root, dir, name, keep string) {
	d, err := root.Open(dir)
	if err != nil {
		return
	}
	ents, _ := d.ReadDir(-1)
	_ = d.Close()
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".tmp-"+name+"-") && p != keep {
			_ = root.Remove(p)
		}
	}
}
