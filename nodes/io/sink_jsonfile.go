package ionodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// JSONFileConfig is JsonFileSink's config: upstream's keys plus fsync.
type JSONFileConfig struct {
	Dir              string `yaml:"dir" doc:"Directory for the files, relative to the working directory; created if missing."`
	FilenameTemplate string `yaml:"filename_template" doc:"Python format string for each file name; fields seq (0-based count of files this run wrote), packet_id, source_id, kind, ts (':' replaced by '-'). Only the last path element is used, so a template cannot leave dir."`
	Body             string `yaml:"body" doc:"payload: the payload only; packet: {packet_id, ts, kind, source_id, payload, meta}."`
	Forward          bool   `yaml:"forward" doc:"Emit each packet after its file is written, with meta[meta_key] = {path, node_id}."`
	EnsureASCII      bool   `yaml:"ensure_ascii" doc:"Escape non-ASCII characters as \\uXXXX (Python's ensure_ascii)."`
	Indent           int    `yaml:"indent" doc:"Python json indent: spaces per level (0 or less: newlines without indentation)."`
	MetaKey          string `yaml:"meta_key" doc:"Meta key of the block added when forwarding."`
	Fsync            string `yaml:"fsync" enum:"always,batch,never" doc:"always: fsync each file and the directory per packet; batch: fsync each file, and the directory once per batch; never: leave it to the OS."`
}

// Validate normalises as upstream does and renders the template once with
// sample values, so a bad template is a config error, not a run error.
func (c *JSONFileConfig) Validate() error {
	c.Dir = strings.TrimSpace(c.Dir)
	if c.Dir == "" {
		c.Dir = "outputs/packets"
	}
	c.Body = strings.ToLower(strings.TrimSpace(c.Body))
	if c.Body == "" {
		c.Body = "payload"
	}
	var errs []error // every problem at once
	if c.Body != "payload" && c.Body != "packet" {
		errs = append(errs, plugin.Errorf("body", "must be 'payload' or 'packet', got %q", c.Body))
	}
	if _, err := pyFormat(c.FilenameTemplate, templateFields(0, &packet.Packet{})); err != nil {
		errs = append(errs, plugin.Errorf("filename_template", "%v", err))
	}
	return errors.Join(errs...)
}

func registerJSONFile(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[JSONFileConfig]{
		Name: modFile + "JsonFileSink",
		Role: plugin.RoleSink,
		// upstream REQUIRES_PORTABLE_PAYLOAD: frames cannot be written or stored
		InProfile: plugin.ProfileJSON, OutProfile: plugin.ProfileJSON,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "Write one JSON file per packet into a directory.",
		Description: "Files hold the bytes upstream writes: json.dumps with indent and ensure_ascii as configured, then " +
			"a newline. Each file is written to a temporary name and renamed into place, so a reader never sees a " +
			"half-written file. seq restarts at 0 in every run, so with the default template a new run overwrites " +
			"the previous run's files, as upstream.",
		Defaults: JSONFileConfig{
			Dir: "outputs/packets", FilenameTemplate: "{seq:06d}_{source_id}_{kind}.json", Body: "payload",
			Indent: 2, MetaKey: "file", Fsync: fsyncBatch,
		},
		Metrics: []plugin.MetricSpec{
			{Name: "written_total", Help: "Packets written as JSON files (upstream's counter)."},
		},
		NewBatchProcessor: func(c JSONFileConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			cs := env.Counters()
			return &jsonFileSink{cfg: c, env: env, dir: pyPath(c.Dir), style: packet.JSONOptions{EnsureASCII: c.EnsureASCII, Pretty: true, Indent: max(c.Indent, 0)},
				Counters: cs, written: cs.Get("written_total")}, nil
		},
	})
}

// templateFields are the names filename_template may use.
func templateFields(seq int64, p *packet.Packet) map[string]any {
	return map[string]any{
		"seq": seq, "packet_id": p.ID, "source_id": p.SourceID, "kind": p.Kind,
		"ts": strings.ReplaceAll(p.TS, ":", "-"),
	}
}

// pyPath normalises a path the way Python's pathlib prints it: repeated
// separators and "." parts dropped, ".." kept, "." for nothing.
func pyPath(p string) string {
	abs := strings.HasPrefix(p, "/")
	var parts []string
	for _, part := range strings.Split(p, "/") {
		if part != "" && part != "." {
			parts = append(parts, part)
		}
	}
	s := strings.Join(parts, "/")
	if abs {
		return "/" + s
	}
	if s == "" {
		return "."
	}
	return s
}

type jsonFileSink struct {
	cfg     JSONFileConfig
	env     plugin.Env
	dir     string
	style   packet.JSONOptions
	started atomic.Bool
	*plugin.Counters
	written *plugin.Counter // upstream's written_total
}

// Start creates the directory and proves it is writable, so that a bad dir
// fails the run before any packet is taken.
func (s *jsonFileSink) Start(context.Context) error {
	dir := s.cfg.Dir
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("json file sink: dir %s is a file, not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("json file sink: create dir %s: %w", dir, unwrapPathError(err))
	}
	probe, err := os.CreateTemp(dir, ".schnitzel-probe-*")
	if err != nil {
		return fmt.Errorf("json file sink: dir %s is not writable: %w", dir, unwrapPathError(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	s.started.Store(true)
	return nil
}

// ProcessBatch writes one file per packet, syncs the directory once (under
// fsync: batch), then forwards.
func (s *jsonFileSink) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	if !s.started.Load() {
		return fmt.Errorf("json file sink %s: not started", s.cfg.Dir)
	}
	var fwd []*packet.Packet
	if s.cfg.Forward {
		fwd = make([]*packet.Packet, 0, len(batch))
	}
	for _, p := range batch {
		path, err := s.writeOne(p)
		if err != nil {
			return err
		}
		if s.cfg.Forward {
			q := p.Copy()
			q.Meta = p.Meta.Clone(1)
			q.Meta.Set(s.cfg.MetaKey, packet.MapOf("path", path, "node_id", s.env.NodeID))
			fwd = append(fwd, q)
		}
	}
	if s.cfg.Fsync == fsyncBatch && len(batch) > 0 {
		if err := syncDir(s.cfg.Dir); err != nil {
			return fmt.Errorf("json file sink: %w", err)
		}
	}
	for _, q := range fwd {
		if err := out.Emit(q); err != nil {
			return err
		}
	}
	return nil
}

// writeOne writes p's file via a temporary name and returns the path as
// upstream reports it (str(Path(dir) / name)).
func (s *jsonFileSink) writeOne(p *packet.Packet) (string, error) {
	raw, err := pyFormat(s.cfg.FilenameTemplate, templateFields(s.written.Load(), p))
	if err != nil {
		return "", fmt.Errorf("json file sink: filename_template: %w", err)
	}
	// Only the last element: a template (or a source_id) with "../" must
	// not write outside dir (upstream's Path(raw).name).
	name := filepath.Base(filepath.FromSlash(raw))
	if name == "." || name == ".." || name == string(filepath.Separator) {
		return "", fmt.Errorf("json file sink: filename_template %q gave no file name for packet %s", s.cfg.FilenameTemplate, p.ID)
	}
	b, err := appendRecord(nil, p, s.cfg.Body == "packet", s.style)
	if err != nil {
		return "", fmt.Errorf("json file sink: %w", err)
	}
	b = append(b, '\n')
	path := filepath.Join(s.cfg.Dir, name)
	if err := s.writeFile(path, b); err != nil {
		return "", err
	}
	s.written.Add(1)
	if s.dir == "." {
		return name, nil
	}
	return s.dir + "/" + name, nil
}

func (s *jsonFileSink) writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(s.cfg.Dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("json file sink: create temporary file in %s: %w", s.cfg.Dir, unwrapPathError(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("json file sink: write %s: %w", path, unwrapPathError(err))
	}
	if s.cfg.Fsync != fsyncNever {
		// Before the rename: otherwise a crash can leave the new name on
		// an empty file.
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("json file sink: fsync %s: %w", path, unwrapPathError(err))
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("json file sink: close %s: %w", path, unwrapPathError(err))
	}
	// CreateTemp makes 0600 files; upstream's write_text gives the usual 0644
	// (before umask).
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("json file sink: chmod %s: %w", path, unwrapPathError(err))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("json file sink: rename into %s: %w", path, errors.Unwrap(err))
	}
	done = true
	if s.cfg.Fsync == fsyncAlways {
		if err := syncDir(s.cfg.Dir); err != nil {
			return fmt.Errorf("json file sink: %w", err)
		}
	}
	return nil
}

var (
	_ plugin.BatchProcessor = (*jsonFileSink)(nil)
	_ plugin.Starter        = (*jsonFileSink)(nil)
	_ plugin.Metrics        = (*jsonFileSink)(nil)
)
