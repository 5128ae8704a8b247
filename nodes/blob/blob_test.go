//go:build unix

package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const (
	writerName = mod + "BytesToFileRefNode"
	readerName = mod + "FileRefToBytesNode"
)

// A source of bytes packets and a sink that keeps what it gets: upstream
// has no node that produces bytes (the pair is for third-party nodes), so
// the graph tests bring their own, registered like any third-party node.
type bytesSourceConfig struct {
	Items    []string `yaml:"items" doc:"payloads, in hex"`
	SourceID string   `yaml:"source_id" doc:"source id"`
}

type bytesSource struct{ cfg bytesSourceConfig }

func (s *bytesSource) Run(ctx context.Context, out plugin.Emitter) error {
	for _, it := range s.cfg.Items {
		if ctx.Err() != nil {
			return nil
		}
		b, err := hex.DecodeString(it)
		if err != nil {
			return err
		}
		if err := out.Emit(packet.New("bytes", s.cfg.SourceID, b, "2026-02-14T00:00:00+00:00", nil)); err != nil {
			return nil
		}
	}
	return nil
}

var (
	keptMu sync.Mutex
	kept   = map[string][]*packet.Packet{}
)

type keepConfig struct {
	Name string `yaml:"name" doc:"bucket"`
}

type keep struct{ name string }

func (k keep) Process(_ context.Context, p *packet.Packet, _ plugin.Emitter) error {
	keptMu.Lock()
	kept[k.name] = append(kept[k.name], p)
	keptMu.Unlock()
	return nil
}

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	Register(r)
	dev.Register(r)
	durable.Register(r)
	plugin.Register(r, plugin.Spec[bytesSourceConfig]{
		Name: "schnitzel_stream.tests.blob:BytesSource", Role: plugin.RoleSource, Out: []string{"bytes"}, Summary: "test bytes",
		Defaults:  bytesSourceConfig{SourceID: "demo01"},
		NewSource: func(c bytesSourceConfig, _ plugin.Env) (plugin.Source, error) { return &bytesSource{cfg: c}, nil },
	})
	plugin.Register(r, plugin.Spec[keepConfig]{
		Name: "schnitzel_stream.tests.blob:Keep", Role: plugin.RoleSink, In: []string{"*"}, InProfile: plugin.ProfileInproc, Summary: "test keep",
		NewProcessor: func(c keepConfig, _ plugin.Env) (plugin.Processor, error) { return keep{name: c.Name}, nil },
	})
	return r
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestRoundTripThroughQueue is upstream's test_payload_ref_roundtrip with
// the real runtime and a real SQLite file: bytes -> ref -> queue, then
// queue -> ref -> bytes, in two runs.
func TestRoundTripThroughQueue(t *testing.T) {
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs")
	q := filepath.Join(dir, "queue.sqlite3")
	bin := "\x00\xff\x01binary\n'\"\\"
	run := plugintest.RunGraph(t, fmt.Sprintf(`
version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.tests.blob:BytesSource", config: {items: [%x, %x]}}
  - {id: to_ref, kind: node, plugin: "schnitzel_stream.nodes.blob_ref:BytesToFileRefNode", config: {dir: %q}}
  - {id: q, kind: sink, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink", config: {path: %q}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {src: src, dst: to_ref}
  - {src: to_ref, dst: q}
  - {src: to_ref, dst: out}
`, "hello", bin, blobs, q), registry())
	if run.Report.Status != "ok" {
		t.Fatalf("status %s", run.Report.Status)
	}
	// upstream's PrintSink line, byte for byte, but for packet_id
	lines := strings.Split(strings.TrimSpace(run.Stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %d lines:\n%s", len(lines), run.Stdout)
	}
	id := regexp.MustCompile(`"packet_id": "([0-9a-f-]{36})"`).FindStringSubmatch(lines[0])
	if id == nil {
		t.Fatalf("no packet_id in %s", lines[0])
	}
	real, _ := filepath.EvalSymlinks(blobs)
	want := `{"packet_id": "` + id[1] + `", "ts": "2026-02-14T00:00:00+00:00", "kind": "bytes_ref", "source_id": "demo01", ` +
		`"payload": {"ref": {"scheme": "file", "path": "` + real + `/demo01/` + id[1] + `.bin", "content_type": null, "size_bytes": 5, ` +
		`"sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}, "meta": {}}`
	if lines[0] != want {
		t.Errorf("ref line\n got %s\nwant %s", lines[0], want)
	}
	m := run.Report.Metrics
	for k, v := range map[string]int64{"node.to_ref.written_total": 2, "node.to_ref.bytes_written_total": int64(5 + len(bin)), "node.to_ref.refused_total": 0} {
		if got, _ := m.Get(k); got != v {
			t.Errorf("%s = %v, want %d", k, got, v)
		}
	}
	f := filepath.Join(real, "demo01", id[1]+".bin")
	st, err := os.Stat(f)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("blob %s: %v, mode %v (want 0600)", f, err, st.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(real, "demo01", ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	run = plugintest.RunGraph(t, fmt.Sprintf(`
version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", config: {path: %q, limit: 10, delete_on_emit: false}}
  - {id: to_bytes, kind: node, plugin: "schnitzel_stream.nodes.blob_ref:FileRefToBytesNode", config: {dir: %q, output_kind: bytes}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.tests.blob:Keep", config: {name: roundtrip}}
edges:
  - {src: src, dst: to_bytes}
  - {src: to_bytes, dst: out}
`, q, blobs), registry())
	keptMu.Lock()
	got := kept["roundtrip"]
	keptMu.Unlock()
	if len(got) != 2 || string(got[0].Payload.([]byte)) != "hello" || string(got[1].Payload.([]byte)) != bin || got[0].Kind != "bytes" || got[0].ID != id[1] {
		t.Fatalf("round trip gave %+v", got)
	}
	if v, _ := run.Report.Metrics.Get("node.to_bytes.read_total"); v != int64(2) {
		t.Errorf("read_total = %v", v)
	}

	// Tamper with a blob in the queue and read again: that packet alone
	// fails, counted, and the run is degraded.
	if err := os.WriteFile(f, []byte("HELLO"), 0o600); err != nil {
		t.Fatal(err)
	}
	run = plugintest.RunGraph(t, fmt.Sprintf(`
version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource", config: {path: %q, limit: 10, delete_on_emit: false}}
  - {id: to_bytes, kind: node, plugin: "schnitzel_stream.nodes.blob_ref:FileRefToBytesNode", config: {dir: %q}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.tests.blob:Keep", config: {name: tampered}}
edges:
  - {src: src, dst: to_bytes}
  - {src: to_bytes, dst: out}
`, q, blobs), registry())
	keptMu.Lock()
	got = kept["tampered"]
	keptMu.Unlock()
	if run.Report.Status != "degraded" || len(got) != 1 || string(got[0].Payload.([]byte)) != bin {
		t.Fatalf("tampered run: status %s, kept %d", run.Report.Status, len(got))
	}
	if v, _ := run.Report.Metrics.Get("node.to_bytes.checksum_mismatch_total"); v != int64(1) {
		t.Errorf("checksum_mismatch_total = %v", v)
	}
}

// newReader builds and starts a reader on dir with extra config.
func newReader(t *testing.T, dir string, kv ...any) *reader {
	t.Helper()
	cfg := packet.MapOf(append([]any{"dir", dir}, kv...)...)
	n := plugintest.Build(t, registry(), readerName, "node", cfg).(*reader)
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n
}

func refPacket(ref *packet.Map) *packet.Packet {
	return packet.New("bytes_ref", "cam01", packet.MapOf("ref", ref), "", nil)
}

func fileRef(path string, content []byte) *packet.Map {
	return packet.MapOf("scheme", "file", "path", path, "content_type", nil, "size_bytes", int64(len(content)), "sha256", hexSum(content))
}

// readOne runs one packet through r and returns what came out and the error.
func readOne(r *reader, p *packet.Packet) ([]*packet.Packet, error) {
	c := &plugintest.Collector{}
	err := plugintest.ProcessInto(r, c, p)
	return c.Packets(), err
}

// wantDropped checks that err fails only the packet and that counter moved.
func wantDropped(t *testing.T, what string, out []*packet.Packet, err error, counter *int64, before int64, msg string) {
	t.Helper()
	var pe *plugin.PacketError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: err = %v, want a PacketError", what, err)
	}
	if len(out) != 0 {
		t.Errorf("%s: emitted %d packets", what, len(out))
	}
	if *counter != before+1 {
		t.Errorf("%s: counter %d, want %d", what, *counter, before+1)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: err %q does not say %q", what, err, msg)
	}
}

func metric(n plugin.Metrics, name string) int64 {
	for _, m := range n.Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	panic("no metric " + name)
}

func TestReaderAttacks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "blobs")
	outside := filepath.Join(base, "secret")
	if err := os.MkdirAll(root, 0o750); err != nil {
		t.Fatal(err)
	}
	secret := []byte("ssh-key")
	if err := os.WriteFile(outside, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	good := []byte("hello")
	goodPath := filepath.Join(root, "ok.bin")
	if err := os.WriteFile(goodPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "out.lnk")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ok.bin", filepath.Join(root, "in.lnk")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(root, "updir")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root) // relative refs resolve against the working directory, as upstream

	r := newReader(t, root)
	count := func(name string) int64 { return metric(r, name) }

	// allowed: a plain ref, a relative one, a symlink that stays inside
	for _, path := range []string{goodPath, "ok.bin", "./sub/../ok.bin", filepath.Join(root, "in.lnk")} {
		out, err := readOne(r, refPacket(fileRef(path, good)))
		if err != nil || len(out) != 1 || string(out[0].Payload.([]byte)) != "hello" || out[0].Kind != "bytes" {
			t.Errorf("ref %s: %v, %v", path, out, err)
		}
	}

	refused := []struct{ what, path, msg string }{
		{"relative traversal", "../../etc/passwd", "outside dir"},
		{"traversal from the root", root + "/../../../etc/passwd", "outside dir"},
		{"absolute path", "/etc/passwd", "outside dir"},
		{"sibling file", outside, "outside dir"},
		{"symlink out of the root", filepath.Join(root, "out.lnk"), "leads outside dir"},
		{"symlinked directory out of the root", filepath.Join(root, "updir", "secret"), "leads outside dir"},
		{"fifo", filepath.Join(root, "fifo"), "not a regular file"},
		{"the root itself", root, "not a regular file"},
	}
	for _, c := range refused {
		before := count("refused_total")
		out, err := readOne(r, refPacket(fileRef(c.path, secret)))
		v := count("refused_total")
		wantDropped(t, c.what, out, err, &v, before, c.msg)
	}

	// malformed refs
	malformed := []struct {
		what    string
		payload any
		msg     string
	}{
		{"payload not a mapping", "x", "expected payload"},
		{"ref not a mapping", packet.MapOf("ref", "x"), "payload.ref as a mapping"},
		{"non-string path", packet.MapOf("ref", packet.MapOf("scheme", "file", "path", int64(42))), "path as a non-empty string"},
		{"blank path", packet.MapOf("ref", packet.MapOf("scheme", "file", "path", " ")), "path as a non-empty string"},
		{"other scheme", packet.MapOf("ref", packet.MapOf("scheme", "http", "path", goodPath)), "unsupported ref scheme http"},
		{"bad sha256", packet.MapOf("ref", packet.MapOf("scheme", "file", "path", goodPath, "sha256", "zz")), "not 64 hex digits"},
		{"bad size", packet.MapOf("ref", packet.MapOf("scheme", "file", "path", goodPath, "size_bytes", "5")), "size_bytes is not"},
	}
	for _, c := range malformed {
		before := count("refused_total")
		out, err := readOne(r, packet.New("bytes_ref", "cam01", c.payload, "", nil))
		v := count("refused_total")
		wantDropped(t, c.what, out, err, &v, before, c.msg)
	}

	// a hard link to a file outside (same file system: the temp dir)
	if err := os.Link(outside, filepath.Join(root, "hard.bin")); err != nil {
		t.Fatal(err)
	}
	before := count("refused_total")
	out, err := readOne(r, refPacket(fileRef(filepath.Join(root, "hard.bin"), secret)))
	v := count("refused_total")
	wantDropped(t, "hard link to a file outside", out, err, &v, before, "2 hard links")
	if out, err := readOne(newReader(t, root, "allow_hardlinks", true), refPacket(fileRef(filepath.Join(root, "hard.bin"), secret))); err != nil || len(out) != 1 {
		t.Errorf("allow_hardlinks: %v", err)
	}

	// missing file
	before = count("missing_total")
	out, err = readOne(r, refPacket(fileRef(filepath.Join(root, "gone.bin"), good)))
	v = count("missing_total")
	wantDropped(t, "missing file", out, err, &v, before, "does not exist")

	// tampered content: same size, other bytes; and other size
	tampered := filepath.Join(root, "t.bin")
	if err := os.WriteFile(tampered, []byte("HELLO"), 0o600); err != nil {
		t.Fatal(err)
	}
	before = count("checksum_mismatch_total")
	out, err = readOne(r, refPacket(fileRef(tampered, good)))
	v = count("checksum_mismatch_total")
	wantDropped(t, "tampered content", out, err, &v, before, "sha256")
	if err := os.WriteFile(tampered, []byte("hello!"), 0o600); err != nil {
		t.Fatal(err)
	}
	before = count("checksum_mismatch_total")
	out, err = readOne(r, refPacket(fileRef(tampered, good)))
	v = count("checksum_mismatch_total")
	wantDropped(t, "truncated or grown content", out, err, &v, before, "size_bytes 5")

	// a symlink swapped in after the check: os.Root refuses the open
	swap := filepath.Join(root, "swap.bin")
	if err := os.WriteFile(swap, good, 0o600); err != nil {
		t.Fatal(err)
	}
	afterCheck = func(rel string) {
		if rel == "swap.bin" {
			_ = os.Remove(swap)
			_ = os.Symlink(outside, swap)
		}
	}
	t.Cleanup(func() { afterCheck = nil })
	before = count("refused_total")
	out, err = readOne(r, refPacket(fileRef(swap, secret)))
	v = count("refused_total")
	wantDropped(t, "symlink swapped in after the check", out, err, &v, before, "escapes")
	afterCheck = nil

	if got := count("read_total"); got != 4 {
		t.Errorf("read_total = %d, want 4", got)
	}
	if got := count("bytes_read_total"); got != 20 {
		t.Errorf("bytes_read_total = %d, want 20", got)
	}
}

func TestReaderLimits(t *testing.T) {
	root := t.TempDir()
	big := filepath.Join(root, "big.bin")
	data := []byte("0123456789")
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newReader(t, root, "max_bytes", int64(9))
	before := metric(r, "refused_total")
	out, err := readOne(r, refPacket(fileRef(big, data)))
	v := metric(r, "refused_total")
	wantDropped(t, "oversized file", out, err, &v, before, "over max_bytes (9)")

	// no sha256 in the ref (upstream's compute_sha256: false): read, unless required
	noSum := packet.MapOf("scheme", "file", "path", big)
	r2 := newReader(t, root)
	if out, err := readOne(r2, refPacket(noSum)); err != nil || len(out) != 1 {
		t.Errorf("ref without sha256: %v", err)
	}
	r3 := newReader(t, root, "require_sha256", true)
	before = metric(r3, "refused_total")
	out, err = readOne(r3, refPacket(noSum))
	v = metric(r3, "refused_total")
	wantDropped(t, "require_sha256", out, err, &v, before, "no sha256")

	// verify off: a tampered blob is read as it is
	r4 := newReader(t, root, "verify_sha256", false, "output_kind", "image")
	out, err = readOne(r4, refPacket(fileRef(big, []byte("other"))))
	if err != nil || len(out) != 1 || out[0].Kind != "image" {
		t.Errorf("verify_sha256 false: %v %v", out, err)
	}
}

func TestReaderRootMustExist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	n := plugintest.Build(t, registry(), readerName, "node", packet.MapOf("dir", dir)).(*reader)
	err := n.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "blob dir "+dir) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("start with a missing dir: %v", err)
	}
	plugintest.Close(t, n)
	if _, err := plugintest.TryBuild(registry(), readerName, "node", packet.NewMap(0)); err == nil || !strings.Contains(err.Error(), "dir") {
		t.Errorf("no dir: %v", err)
	}
}

func newWriter(t *testing.T, dir string, kv ...any) *writer {
	t.Helper()
	n := plugintest.Build(t, registry(), writerName, "node", packet.MapOf(append([]any{"dir", dir}, kv...)...)).(*writer)
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n
}

func writeOne(w *writer, p *packet.Packet) ([]*packet.Packet, error) {
	c := &plugintest.Collector{}
	err := plugintest.ProcessInto(w, c, p)
	return c.Packets(), err
}

func refOf(t *testing.T, p *packet.Packet) *packet.Map {
	t.Helper()
	m, _ := p.Payload.(*packet.Map)
	ref, _ := m.Get("ref")
	r, ok := ref.(*packet.Map)
	if !ok || p.Kind != "bytes_ref" {
		t.Fatalf("not a bytes_ref: %+v", p)
	}
	return r
}

func TestWriterNames(t *testing.T) {
	root := t.TempDir()
	real, _ := filepath.EvalSymlinks(root)
	w := newWriter(t, root)
	hostile := []string{"../../etc", "/etc", "..", ".", "a/b", `a\b`, "", "x\x00y", strings.Repeat("a", 200)}
	seen := map[string]bool{}
	for _, sid := range hostile {
		p := packet.New("bytes", sid, []byte("x"), "", nil)
		p.ID = "../../../tmp/evil" // a packet_id from a queue or an HTTP source is not trusted either
		out, err := writeOne(w, p)
		if err != nil || len(out) != 1 {
			t.Fatalf("source_id %q: %v", sid, err)
		}
		path, _ := refOf(t, out[0]).Get("path")
		rel, err := filepath.Rel(real, path.(string))
		if err != nil || !filepath.IsLocal(rel) || strings.Count(rel, "/") != 1 {
			t.Errorf("source_id %q wrote %s", sid, path)
		}
		if seen[rel] {
			t.Errorf("source_id %q collides at %s", sid, rel)
		}
		seen[rel] = true
	}
	// template errors are config errors
	for _, tmpl := range []string{"{camera}.bin", "../{packet_id}", "{packet_id!r}", "{packet_id", "a}b"} {
		if _, err := plugintest.TryBuild(registry(), writerName, "node", packet.MapOf("dir", root, "filename", tmpl)); err == nil {
			t.Errorf("filename %q accepted", tmpl)
		}
	}
	// leading slashes are dropped (upstream), {{ }} are braces
	w2 := newWriter(t, root, "filename", "/x/{{{packet_id}}}.raw")
	p := packet.New("bytes", "s", []byte("y"), "", nil)
	out, err := writeOne(w2, p)
	if err != nil {
		t.Fatal(err)
	}
	if path, _ := refOf(t, out[0]).Get("path"); path != filepath.Join(real, "x", "{"+p.ID+"}.raw") {
		t.Errorf("path %v", path)
	}
}

func TestWriterRefusesAndExisting(t *testing.T) {
	root := t.TempDir()
	if _, err := plugintest.TryBuild(registry(), writerName, "node", packet.MapOf("dir", root, "mode", "0644")); err == nil {
		t.Error("mode 0644 accepted")
	}
	w := newWriter(t, root, "max_bytes", int64(4), "mode", int64(0o640) /* YAML's unquoted 0640 */, "content_type", "image/jpeg", "compute_sha256", false)
	count := func(n string) int64 { return metric(w, n) }

	before := count("refused_total")
	out, err := writeOne(w, packet.New("bytes", "s", []byte("12345"), "", nil))
	v := count("refused_total")
	wantDropped(t, "oversized payload", out, err, &v, before, "over max_bytes (4)")
	for _, payload := range []any{"text", packet.MapOf("a", int64(1)), nil} {
		before := count("refused_total")
		out, err := writeOne(w, packet.New("bytes", "s", payload, "", nil))
		v := count("refused_total")
		wantDropped(t, fmt.Sprintf("payload %T", payload), out, err, &v, before, "expected a bytes payload")
	}

	p := packet.New("bytes", "s", []byte("abcd"), "", nil)
	out, err = writeOne(w, p)
	if err != nil {
		t.Fatal(err)
	}
	ref := refOf(t, out[0])
	if ct, _ := ref.Get("content_type"); ct != "image/jpeg" {
		t.Errorf("content_type %v", ct)
	}
	if _, has := ref.Get("sha256"); has {
		t.Error("sha256 written with compute_sha256 false")
	}
	path, _ := ref.Get("path")
	if st, err := os.Stat(path.(string)); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	// the same packet again (a redelivery): referenced, not rewritten
	if out, err := writeOne(w, p); err != nil || len(out) != 1 || count("existing_total") != 1 {
		t.Errorf("redelivery: %v, existing %d", err, count("existing_total"))
	}
	// a crash between link and remove left a temporary link: a
	// redelivery removes it, so the blob has one link again
	stale := filepath.Join(filepath.Dir(path.(string)), ".tmp-"+filepath.Base(path.(string))+"-0011223344556677")
	if err := os.Link(path.(string), stale); err != nil {
		t.Fatal(err)
	}
	if _, err := writeOne(w, p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary link kept: %v", err)
	}
	// the same name with other content: refused, the blob is unchanged
	q := p.Copy()
	q.Payload = []byte("evil")
	before = count("refused_total")
	out, err = writeOne(w, q)
	v = count("refused_total")
	wantDropped(t, "name taken", out, err, &v, before, "exists with other content")
	if b, _ := os.ReadFile(path.(string)); string(b) != "abcd" {
		t.Errorf("blob overwritten: %q", b)
	}
	if count("written_total") != 1 || count("bytes_written_total") != 4 {
		t.Errorf("written %d, bytes %d", count("written_total"), count("bytes_written_total"))
	}
	// overwrite: replaced atomically
	w2 := newWriter(t, root, "overwrite", true)
	if _, err := writeOne(w2, q); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path.(string)); string(b) != "evil" {
		t.Errorf("overwrite: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path.(string)), ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestWriterStartFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n := plugintest.Build(t, registry(), writerName, "node", packet.MapOf("dir", filepath.Join(f, "blobs"))).(*writer)
	if err := n.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "blob dir") {
		t.Fatalf("start: %v", err)
	}
	plugintest.Close(t, n)
}

// A dir configured through a symlink: refs may name it either way.
func TestReaderDirThroughSymlink(t *testing.T) {
	base := t.TempDir()
	realDir := filepath.Join(base, "real")
	link := filepath.Join(base, "link")
	if err := os.MkdirAll(realDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(realDir, link); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, link)
	out, err := writeOne(w, packet.New("bytes", "s", []byte("data"), "", nil))
	if err != nil {
		t.Fatal(err)
	}
	ref := refOf(t, out[0])
	path, _ := ref.Get("path")
	if !strings.HasPrefix(path.(string), realDir+"/") {
		t.Errorf("ref path %v is not under the resolved dir %s", path, realDir)
	}
	r := newReader(t, link)
	viaLink := fileRef(filepath.Join(link, "s", filepath.Base(path.(string))), []byte("data"))
	for _, m := range []*packet.Map{ref, viaLink} {
		if out, err := readOne(r, refPacket(m)); err != nil || len(out) != 1 {
			t.Errorf("ref %v: %v", m, err)
		}
	}
}

func benchmarkWriteRead(b *testing.B, size int, fsync bool) {
	dir := b.TempDir()
	reg := registry()
	w := plugintest.Build(b, reg, writerName, "node", packet.MapOf("dir", dir, "fsync", fsync)).(*writer)
	r := plugintest.Build(b, reg, readerName, "node", packet.MapOf("dir", dir)).(*reader)
	plugintest.Start(b, w)
	plugintest.Start(b, r)
	defer plugintest.Close(b, w)
	defer plugintest.Close(b, r)
	data := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		c := &plugintest.Collector{}
		if err := plugintest.ProcessInto(w, c, packet.New("bytes", "s", data, "", nil)); err != nil {
			b.Fatal(err)
		}
		if err := plugintest.ProcessInto(r, &plugintest.Collector{}, c.Packets()...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteRead4KiB(b *testing.B)        { benchmarkWriteRead(b, 4<<10, true) }
func BenchmarkWriteRead1MiB(b *testing.B)        { benchmarkWriteRead(b, 1<<20, true) }
func BenchmarkWriteRead4KiBNoFsync(b *testing.B) { benchmarkWriteRead(b, 4<<10, false) }
func BenchmarkWriteRead1MiBNoFsync(b *testing.B) { benchmarkWriteRead(b, 1<<20, false) }
