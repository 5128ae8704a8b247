package ionodes

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const jsonlSinkName = "schnitzel_stream.nodes.file_sink:JsonlSink"

func fixedPacket(i int) *packet.Packet {
	return &packet.Packet{
		ID: fmt.Sprintf("p-%d", i), TS: "2026-02-15T00:00:00+00:00", Kind: "event", SourceID: "cam01",
		Payload: packet.MapOf("event_id", fmt.Sprintf("e%d", i), "name", "Zoë ✓", "v", []any{int64(1), 2.5, nil}),
		Meta:    packet.MapOf("idempotency_key", fmt.Sprintf("k%d", i)),
	}
}

func buildJSONL(t testing.TB, kv ...any) plugin.BatchProcessor {
	t.Helper()
	n := plugintest.Build(t, testRegistry(), jsonlSinkName, "sink", packet.MapOf(kv...))
	plugintest.Start(t, n)
	return n.(plugin.BatchProcessor)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Goldens: CPython json.dumps of the same record (upstream JsonlSink.process).
func TestJSONLSinkBytesMatchUpstream(t *testing.T) {
	cases := []struct {
		name string
		kv   []any
		want string
	}{
		{"packet", nil,
			`{"packet_id": "p-0", "ts": "2026-02-15T00:00:00+00:00", "kind": "event", "source_id": "cam01", "payload": {"event_id": "e0", "name": "Zoë ✓", "v": [1, 2.5, null]}, "meta": {"idempotency_key": "k0"}}` + "\n"},
		{"payload", []any{"body", "payload"},
			`{"event_id": "e0", "name": "Zoë ✓", "v": [1, 2.5, null]}` + "\n"},
		{"ascii", []any{"body", "payload", "ensure_ascii", true},
			`{"event_id": "e0", "name": "Zo\u00eb \u2713", "v": [1, 2.5, null]}` + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			s := buildJSONL(t, append([]any{"path", path}, tc.kv...)...)
			if err := s.ProcessBatch(context.Background(), []*packet.Packet{fixedPacket(0)}, &plugintest.Collector{}); err != nil {
				t.Fatal(err)
			}
			plugintest.Close(t, s)
			if got := readFile(t, path); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestJSONLSinkCrossCheckUpstream runs upstream's own JsonlSink on the same
// packets when SCHNITZEL_UPSTREAM_SRC points at its src directory (for
// example <python checkout>/src) and compares the files byte for byte.
func TestJSONLSinkCrossCheckUpstream(t *testing.T) {
	src := os.Getenv("SCHNITZEL_UPSTREAM_SRC")
	py, err := exec.LookPath("/usr/bin/python3")
	if src == "" || err != nil {
		t.Skip("set SCHNITZEL_UPSTREAM_SRC (and have /usr/bin/python3) to compare with upstream")
	}
	dir := t.TempDir()
	for _, ascii := range []bool{false, true} {
		ours, theirs := filepath.Join(dir, fmt.Sprint("go-", ascii)), filepath.Join(dir, fmt.Sprint("py-", ascii))
		s := buildJSONL(t, "path", ours, "ensure_ascii", ascii)
		var batch []*packet.Packet
		for i := 0; i < 3; i++ {
			batch = append(batch, fixedPacket(i))
		}
		if err := s.ProcessBatch(context.Background(), batch, &plugintest.Collector{}); err != nil {
			t.Fatal(err)
		}
		plugintest.Close(t, s)
		script := fmt.Sprintf(`
from schnitzel_stream.nodes.file_sink import JsonlSink
from schnitzel_stream.packet import StreamPacket
s = JsonlSink(config={"path": %q, "ensure_ascii": %s})
for i in range(3):
    s.process(StreamPacket(packet_id="p-%%d" %% i, ts="2026-02-15T00:00:00+00:00", kind="event", source_id="cam01",
        payload={"event_id": "e%%d" %% i, "name": "Zo\u00eb \u2713", "v": [1, 2.5, None]}, meta={"idempotency_key": "k%%d" %% i}))
s.close()
`, theirs, map[bool]string{false: "False", true: "True"}[ascii])
		cmd := exec.Command(py, "-c", script)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+src)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("upstream: %v\n%s", err, out)
		}
		if a, b := readFile(t, ours), readFile(t, theirs); a != b {
			t.Errorf("ensure_ascii=%v: bytes differ\nours   %q\ntheirs %q", ascii, a, b)
		}
	}
}

func TestJSONLSinkAppendVsOverwrite(t *testing.T) {
	line := func(i int) string {
		b, _ := appendRecord(nil, fixedPacket(i), true, packet.JSONOptions{})
		return string(b) + "\n"
	}
	cases := []struct {
		mode string
		want string
	}{
		{"append", "old line\n" + line(1)},
		{"overwrite", line(1)},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			if err := os.WriteFile(path, []byte("old line\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := buildJSONL(t, "path", path, "mode", tc.mode)
			if err := s.ProcessBatch(context.Background(), []*packet.Packet{fixedPacket(1)}, &plugintest.Collector{}); err != nil {
				t.Fatal(err)
			}
			plugintest.Close(t, s)
			if got := readFile(t, path); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := plugintest.TryBuild(testRegistry(), jsonlSinkName, "sink", packet.MapOf("path", "x", "mode", "replace")); err == nil ||
		!strings.Contains(err.Error(), "config.mode") {
		t.Errorf("mode replace: err = %v", err)
	}
}

func TestJSONLSinkRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ev.jsonl")
	// Payload-only lines of 17 bytes: {"s": "0000000"} and a newline.
	mk := func(i int) *packet.Packet {
		return &packet.Packet{ID: "x", Payload: packet.MapOf("s", fmt.Sprintf("%07d", i))}
	}
	const lineLen = 17
	s := buildJSONL(t, "path", path, "body", "payload", "max_bytes", int64(3*lineLen+5), "max_files", int64(2))
	// Batches of different sizes, so rotation happens inside batches too.
	seq := 0
	for _, size := range []int{1, 4, 2, 5} {
		var batch []*packet.Packet
		for j := 0; j < size; j++ {
			batch = append(batch, mk(seq))
			seq++
		}
		if err := s.ProcessBatch(context.Background(), batch, &plugintest.Collector{}); err != nil {
			t.Fatal(err)
		}
	}
	plugintest.Close(t, s)
	// 12 lines, 3 per file: files hold 0-2, 3-5, 6-8, 9-11; two rotated kept.
	want := map[string]string{path: "9-11", path + ".1": "6-8", path + ".2": "3-5"}
	for p, span := range want {
		var lo, hi int
		fmt.Sscanf(span, "%d-%d", &lo, &hi)
		var exp strings.Builder
		for i := lo; i <= hi; i++ {
			fmt.Fprintf(&exp, "{\"s\": \"%07d\"}\n", i)
		}
		if got := readFile(t, p); got != exp.String() {
			t.Errorf("%s = %q, want lines %s", filepath.Base(p), got, span)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists beyond max_files", path)
	}
	if got := metricValue(t, s.(plugin.Metrics), "rotated_total"); got != 3 {
		t.Errorf("rotated_total = %d, want 3", got)
	}
	if got := metricValue(t, s.(plugin.Metrics), "written_total"); got != 12 {
		t.Errorf("written_total = %d, want 12", got)
	}
}

func TestJSONLSinkRotationEdgeCases(t *testing.T) {
	t.Run("line longer than max_bytes gets its own file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ev.jsonl")
		s := buildJSONL(t, "path", path, "body", "payload", "max_bytes", int64(10), "max_files", int64(3))
		batch := []*packet.Packet{{Payload: "a"}, {Payload: strings.Repeat("b", 30)}, {Payload: "c"}}
		if err := s.ProcessBatch(context.Background(), batch, &plugintest.Collector{}); err != nil {
			t.Fatal(err)
		}
		plugintest.Close(t, s)
		got := readFile(t, path+".2") + "|" + readFile(t, path+".1") + "|" + readFile(t, path)
		if want := "\"a\"\n|\"" + strings.Repeat("b", 30) + "\"\n|\"c\"\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("max_files 0 keeps none", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "ev.jsonl")
		s := buildJSONL(t, "path", path, "body", "payload", "max_bytes", int64(4), "max_files", int64(0))
		if err := s.ProcessBatch(context.Background(), []*packet.Packet{{Payload: "a"}, {Payload: "b"}}, &plugintest.Collector{}); err != nil {
			t.Fatal(err)
		}
		plugintest.Close(t, s)
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 || readFile(t, path) != "\"b\"\n" {
			t.Errorf("dir holds %d entries, file %q", len(ents), readFile(t, path))
		}
	})
	t.Run("append continues the size of an existing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ev.jsonl")
		os.WriteFile(path, []byte("0123456789\n"), 0o644)
		s := buildJSONL(t, "path", path, "body", "payload", "max_bytes", int64(12))
		if err := s.ProcessBatch(context.Background(), []*packet.Packet{{Payload: "a"}}, &plugintest.Collector{}); err != nil {
			t.Fatal(err)
		}
		plugintest.Close(t, s)
		if readFile(t, path+".1") != "0123456789\n" || readFile(t, path) != "\"a\"\n" {
			t.Errorf("existing content not rotated out first")
		}
	})
}

func TestJSONLSinkFsyncPolicies(t *testing.T) {
	for _, pol := range []string{"always", "batch", "never"} {
		t.Run(pol, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a", "b", "ev.jsonl") // parents are created
			s := buildJSONL(t, "path", path, "fsync", pol, "body", "payload", "forward", true, "max_bytes", int64(4))
			c := &plugintest.Collector{}
			batch := []*packet.Packet{{Payload: int64(1)}, {Payload: int64(2)}, {Payload: int64(3)}}
			if err := s.ProcessBatch(context.Background(), batch, c); err != nil {
				t.Fatal(err)
			}
			plugintest.Close(t, s)
			if got := readFile(t, path+".1") + readFile(t, path); got != "1\n2\n3\n" {
				t.Errorf("content %q", got)
			}
			if len(c.Packets()) != 3 || c.Packets()[0] != batch[0] {
				t.Errorf("forwarded %d packets", len(c.Packets()))
			}
		})
	}
	if _, err := plugintest.TryBuild(testRegistry(), jsonlSinkName, "sink", packet.MapOf("path", "x", "fsync", "sometimes")); err == nil ||
		!strings.Contains(err.Error(), "config.fsync") {
		t.Errorf("fsync sometimes: err = %v", err)
	}
}

func TestJSONLSinkForwardAndMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.jsonl")
	s := buildJSONL(t, "path", path, "forward", "false")
	c := &plugintest.Collector{}
	if err := s.ProcessBatch(context.Background(), []*packet.Packet{fixedPacket(1), fixedPacket(2)}, c); err != nil {
		t.Fatal(err)
	}
	if err := s.ProcessBatch(context.Background(), []*packet.Packet{fixedPacket(3)}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.Packets()) != 0 {
		t.Errorf(`forward "false" must be false (strict boolean)`)
	}
	if got := metricValue(t, s.(plugin.Metrics), "written_total"); got != 3 {
		t.Errorf("written_total = %d", got)
	}
	plugintest.Close(t, s)
	if n := strings.Count(readFile(t, path), "\n"); n != 3 {
		t.Errorf("%d lines", n)
	}
}

func TestJSONLSinkNonJSONFailsBeforeWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.jsonl")
	s := buildJSONL(t, "path", path)
	err := s.ProcessBatch(context.Background(), []*packet.Packet{fixedPacket(1), {ID: "bad", Kind: "frame", Payload: frameLike{}}}, &plugintest.Collector{})
	if err == nil || !strings.Contains(err.Error(), "not JSON-serializable") || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("err = %v", err)
	}
	plugintest.Close(t, s)
	if got := readFile(t, path); got != "" {
		t.Errorf("wrote %q from a failed batch", got)
	}
}

func TestJSONLSinkBadPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	os.WriteFile(file, nil, 0o644)
	locked := filepath.Join(dir, "locked")
	os.Mkdir(locked, 0o500)
	cases := []struct {
		name, path, want string
	}{
		{"directory", dir, "is a directory"},
		{"parent is a file", filepath.Join(file, "x.jsonl"), "parent directory"},
		{"unwritable", filepath.Join(locked, "x.jsonl"), "permission denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unwritable" && os.Geteuid() == 0 {
				t.Skip("root can write anywhere")
			}
			n := plugintest.Build(t, testRegistry(), jsonlSinkName, "sink", packet.MapOf("path", tc.path))
			err := n.(plugin.Starter).Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start err = %v, want it to name %s and say %q", err, tc.path, tc.want)
			}
			plugintest.Close(t, n) // Close after a failed Start is safe
		})
	}
	if _, err := plugintest.TryBuild(testRegistry(), jsonlSinkName, "sink", packet.MapOf()); err == nil || !strings.Contains(err.Error(), "config.path") {
		t.Errorf("missing path: %v", err)
	}
}

// Sanity: the bytes of one batch are the concatenation of per-packet lines,
// whatever the batch split.
func TestJSONLSinkBatchSplitInvariant(t *testing.T) {
	var pk []*packet.Packet
	for i := 0; i < 7; i++ {
		pk = append(pk, fixedPacket(i))
	}
	var files []string
	for _, split := range [][]int{{7}, {1, 1, 1, 1, 1, 1, 1}, {3, 4}} {
		path := filepath.Join(t.TempDir(), "ev.jsonl")
		s := buildJSONL(t, "path", path)
		i := 0
		for _, n := range split {
			if err := s.ProcessBatch(context.Background(), pk[i:i+n], &plugintest.Collector{}); err != nil {
				t.Fatal(err)
			}
			i += n
		}
		plugintest.Close(t, s)
		files = append(files, readFile(t, path))
	}
	if !bytes.Equal([]byte(files[0]), []byte(files[1])) || files[0] != files[2] {
		t.Errorf("batch split changed the bytes")
	}
}

// Group commit (fsync batch, no forward): batches written while an fsync
// runs are covered by the next one; Flush returns once all are synced, and
// Flush or Close after Close neither hang nor fail.
func TestJSONLSinkGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.jsonl")
	s := buildJSONL(t, "path", path, "body", "payload")
	var want strings.Builder
	for i := range 200 {
		if err := s.ProcessBatch(context.Background(), []*packet.Packet{{Payload: int64(i)}}, &plugintest.Collector{}); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&want, "%d\n", i)
	}
	fl, ok := s.(plugin.Flusher)
	if !ok {
		t.Fatal("JsonlSink under fsync batch is not a plugin.Flusher")
	}
	if err := fl.Flush(context.Background(), &plugintest.Collector{}); err != nil {
		t.Fatal(err)
	}
	plugintest.Close(t, s)
	plugintest.Close(t, s)
	if err := fl.Flush(context.Background(), &plugintest.Collector{}); err != nil {
		t.Fatalf("flush after close: %v", err)
	}
	if got := readFile(t, path); got != want.String() {
		t.Errorf("file holds %d bytes, want %d", len(got), want.Len())
	}
}
