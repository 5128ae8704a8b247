package ionodes

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const jsonFileSinkName = "schnitzel_stream.nodes.file_sink:JsonFileSink"

func buildJSONFile(t *testing.T, kv ...any) plugin.BatchProcessor {
	t.Helper()
	n := plugintest.Build(t, testRegistry(), jsonFileSinkName, "sink", packet.MapOf(kv...))
	plugintest.Start(t, n)
	return n.(plugin.BatchProcessor)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestJSONFileSinkWritesOneFilePerPacket(t *testing.T) {
	for _, pol := range []string{"always", "batch", "never"} {
		t.Run(pol, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "packets") // created at Start
			s := buildJSONFile(t, "dir", dir, "fsync", pol)
			batch := []*packet.Packet{fixedPacket(0), fixedPacket(1)}
			if err := s.ProcessBatch(context.Background(), batch, &plugintest.Collector{}); err != nil {
				t.Fatal(err)
			}
			if err := s.ProcessBatch(context.Background(), []*packet.Packet{fixedPacket(2)}, &plugintest.Collector{}); err != nil {
				t.Fatal(err)
			}
			want := []string{"000000_cam01_event.json", "000001_cam01_event.json", "000002_cam01_event.json"}
			if got := listDir(t, dir); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("files %v, want %v (and no temporary files)", got, want)
			}
			// CPython: json.dumps(payload, ensure_ascii=False, indent=2) + "\n"
			wantBody := "{\n  \"event_id\": \"e1\",\n  \"name\": \"Zoë ✓\",\n  \"v\": [\n    1,\n    2.5,\n    null\n  ]\n}\n"
			if got := readFile(t, filepath.Join(dir, want[1])); got != wantBody {
				t.Errorf("got %q\nwant %q", got, wantBody)
			}
			if got := metricValue(t, s.(plugin.Metrics), "written_total"); got != 3 {
				t.Errorf("written_total = %d", got)
			}
		})
	}
}

func TestJSONFileSinkSanitisesNameAndForwards(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	s := buildJSONFile(t, "dir", "./out//packets/", "filename_template", "../{kind}/../escape_{seq:03d}.json",
		"body", "packet", "forward", true, "meta_key", "artifact", "indent", int64(0), "ensure_ascii", true)
	c := &plugintest.Collector{}
	p := fixedPacket(4)
	if err := s.ProcessBatch(context.Background(), []*packet.Packet{p}, c); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, filepath.Join(root, "out", "packets")); len(got) != 1 || got[0] != "escape_000.json" {
		t.Fatalf("files %v", got)
	}
	if got := listDir(t, root); len(got) != 1 {
		t.Errorf("wrote outside dir: %v", got)
	}
	out := c.Packets()
	if len(out) != 1 || out[0].ID != p.ID {
		t.Fatalf("forwarded %v", out)
	}
	a, _ := out[0].Meta.Get("artifact")
	am := a.(*packet.Map)
	if path, _ := am.GetString("path"); path != "out/packets/escape_000.json" {
		t.Errorf("meta.artifact.path = %q, want pathlib's str() form", path)
	}
	if id, _ := am.GetString("node_id"); id != "n" {
		t.Errorf("meta.artifact.node_id = %q", id)
	}
	if _, has := p.Meta.Get("artifact"); has {
		t.Errorf("input packet's meta was changed")
	}
	body := readFile(t, filepath.Join(root, "out", "packets", "escape_000.json"))
	if !strings.HasPrefix(body, "{\n\"packet_id\": \"p-4\",\n") || !strings.Contains(body, `"Zo\u00eb \u2713"`) {
		t.Errorf("indent 0 / ensure_ascii body: %q", body)
	}
}

func TestJSONFileSinkBadDirAndTemplate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	os.WriteFile(file, nil, 0o644)
	locked := filepath.Join(dir, "locked")
	os.Mkdir(locked, 0o500)
	cases := []struct{ name, dir, want string }{
		{"dir is a file", file, "is a file"},
		{"unwritable", locked, "not writable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unwritable" && os.Geteuid() == 0 {
				t.Skip("root can write anywhere")
			}
			n := plugintest.Build(t, testRegistry(), jsonFileSinkName, "sink", packet.MapOf("dir", tc.dir))
			err := n.(plugin.Starter).Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.dir) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start err = %v, want it to name %s and say %q", err, tc.dir, tc.want)
			}
		})
	}
	for _, tmpl := range []string{"{seq:06d", "{nope}.json", "{kind:d}"} {
		if _, err := plugintest.TryBuild(testRegistry(), jsonFileSinkName, "sink", packet.MapOf("filename_template", tmpl)); err == nil ||
			!strings.Contains(err.Error(), "config.filename_template") {
			t.Errorf("template %q: err = %v", tmpl, err)
		}
	}
	s := buildJSONFile(t, "dir", filepath.Join(dir, "ok"), "filename_template", "{kind}/")
	err := s.ProcessBatch(context.Background(), []*packet.Packet{{ID: "x", Kind: ".."}}, &plugintest.Collector{})
	if err == nil || !strings.Contains(err.Error(), "no file name") {
		t.Errorf("kind '..': err = %v", err)
	}
}

// TestJSONFileSinkCrossCheckUpstream compares with upstream's JsonFileSink
// when SCHNITZEL_UPSTREAM_SRC is set (see TestJSONLSinkCrossCheckUpstream).
func TestJSONFileSinkCrossCheckUpstream(t *testing.T) {
	src := os.Getenv("SCHNITZEL_UPSTREAM_SRC")
	if src == "" {
		t.Skip("set SCHNITZEL_UPSTREAM_SRC to compare with upstream")
	}
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "go"), filepath.Join(dir, "py")
	s := buildJSONFile(t, "dir", ours, "body", "packet", "indent", int64(3))
	if err := s.ProcessBatch(context.Background(), []*packet.Packet{fixedPacket(0), fixedPacket(1)}, &plugintest.Collector{}); err != nil {
		t.Fatal(err)
	}
	script := `
import sys
from schnitzel_stream.nodes.file_sink import JsonFileSink
from schnitzel_stream.packet import StreamPacket
s = JsonFileSink(config={"dir": sys.argv[1], "body": "packet", "indent": 3})
for i in range(2):
    s.process(StreamPacket(packet_id="p-%d" % i, ts="2026-02-15T00:00:00+00:00", kind="event", source_id="cam01",
        payload={"event_id": "e%d" % i, "name": "Zo\u00eb \u2713", "v": [1, 2.5, None]}, meta={"idempotency_key": "k%d" % i}))
`
	cmd := exec.Command("/usr/bin/python3", "-c", script, theirs)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("upstream: %v\n%s", err, out)
	}
	a, b := listDir(t, ours), listDir(t, theirs)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("names differ: %v vs %v", a, b)
	}
	for _, name := range a {
		if x, y := readFile(t, filepath.Join(ours, name)), readFile(t, filepath.Join(theirs, name)); x != y {
			t.Errorf("%s differs:\nours   %q\ntheirs %q", name, x, y)
		}
	}
}
