package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// D-BLOB-1 end to end: bytes_ref packets that a queue (or any source)
// carries cannot make the graph read files outside the reader's dir. The
// hostile refs go through a real SQLite queue file, as they would from
// another process; the good one is read, the others fail alone, counted,
// and the run ends degraded (exit 3 with --fail-on-degraded).
func TestBlobRefsConfinedToDir(t *testing.T) {
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blobs, "ok.bin"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("TOPSECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(blobs, "link.bin")); err != nil {
		t.Fatal(err)
	}
	ref := func(path string) string {
		return fmt.Sprintf(`{kind: bytes_ref, payload: {ref: {scheme: file, path: %q, content_type: null, size_bytes: 5}}}`, path)
	}
	enqueue := fmt.Sprintf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
    config:
      packets:
        - %s
        - %s
        - %s
        - %s
        - %s
        - {kind: bytes_ref, payload: {ref: {scheme: file, path: 42}}}
  - {id: q, kind: sink, plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink, config: {path: q.sqlite3}}
edges:
  - {src: src, dst: q}
`, ref(filepath.Join(blobs, "ok.bin")), ref("/etc/passwd"), ref("blobs/../secret"), ref(filepath.Join(blobs, "link.bin")), ref(filepath.Join(blobs, "gone.bin")))
	drain := `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource, config: {path: q.sqlite3, limit: 10, delete_on_emit: true}}
  - {id: to_bytes, kind: node, plugin: schnitzel_stream.nodes.blob_ref:FileRefToBytesNode, config: {dir: blobs}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}
edges:
  - {src: src, dst: to_bytes}
  - {src: to_bytes, dst: out}
`
	for name, g := range map[string]string{"enqueue.yaml": enqueue, "drain.yaml": drain} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(g), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if r := run(t, dir, nil, "--graph", "enqueue.yaml"); r.code != 0 {
		t.Fatalf("enqueue: exit %d\n%s", r.code, r.stderr)
	}
	r := run(t, dir, nil, "--graph", "drain.yaml", "--report-json", "--fail-on-degraded")
	if r.code != 3 {
		t.Fatalf("drain: exit %d, want 3 (degraded)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "TOPSECRET") || strings.Contains(r.stdout, "root:") {
		t.Fatalf("a file outside dir was read:\n%s", r.stdout)
	}
	if n := strings.Count(r.stdout, `"payload": "b'hello'"`); n != 1 {
		t.Errorf("good blob printed %d times:\n%s", n, r.stdout)
	}
	for _, want := range []string{`"node.to_bytes.read_total":1`, `"node.to_bytes.refused_total":4`, `"node.to_bytes.missing_total":1`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %s:\n%s", want, r.stdout)
		}
	}
	for _, want := range []string{"outside dir", "leads outside dir", "does not exist", "path as a non-empty string"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, r.stderr)
		}
	}
}
