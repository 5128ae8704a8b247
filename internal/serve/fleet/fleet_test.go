package fleet_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/fleet"
	"github.com/schnitzel-stream/schnitzel/internal/serve/servetest"
	"github.com/schnitzel-stream/schnitzel/nodes/all"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Upstream's own configs/fleet.yaml: every stream, with the variables
// ops/fleet.py build_stream_env sets, new and legacy names.
func TestParseUpstreamFleet(t *testing.T) {
	f, err := fleet.Parse("fleet.yaml", read(t, "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Legacy || len(f.Streams) != 4 {
		t.Fatalf("legacy=%v streams=%d, want streams[] with 4", f.Legacy, len(f.Streams))
	}
	base := t.TempDir()
	want := map[string]map[string]string{
		"stream01": {"SS_INPUT_TYPE": "rtsp", "SS_INPUT_URL": "rtsp://127.0.0.1:8554/stream1", "SS_SOURCE_URL": "rtsp://127.0.0.1:8554/stream1",
			"SS_INPUT_PLUGIN": "schnitzel_stream.packs.vision.nodes:OpenCvRtspSource", "SS_SOURCE_PLUGIN": "schnitzel_stream.packs.vision.nodes:OpenCvRtspSource"},
		"stream03": {"SS_INPUT_TYPE": "file", "SS_SOURCE_TYPE": "file",
			"SS_INPUT_PATH":  filepath.Join(base, "data/samples/2048246-hd_1920_1080_24fps.mp4"),
			"SS_SOURCE_PATH": filepath.Join(base, "data/samples/2048246-hd_1920_1080_24fps.mp4")},
		"stream04": {"SS_INPUT_TYPE": "webcam", "SS_INPUT_INDEX": "0", "SS_CAMERA_INDEX": "0",
			"SS_INPUT_PLUGIN": "schnitzel_stream.packs.vision.nodes:OpenCvWebcamSource"},
	}
	lines := map[string]int{"stream01": 4, "stream02": 11, "stream03": 18, "stream04": 27}
	for _, s := range f.Streams {
		if s.Line != lines[s.ID] {
			t.Errorf("%s: line %d, want %d", s.ID, s.Line, lines[s.ID])
		}
		env := s.Env(base)
		if env["SS_STREAM_ID"] != s.ID || env["SS_CAMERA_ID"] != s.ID {
			t.Errorf("%s: stream id variables %q %q", s.ID, env["SS_STREAM_ID"], env["SS_CAMERA_ID"])
		}
		for k, v := range want[s.ID] {
			if env[k] != v {
				t.Errorf("%s: %s = %q, want %q", s.ID, k, env[k], v)
			}
		}
		if s.Type == "rtsp" {
			if _, ok := env["SS_INPUT_PATH"]; ok {
				t.Errorf("%s: an rtsp stream got SS_INPUT_PATH", s.ID)
			}
		}
	}
}

// The seed's configs/cameras.yaml: cameras[] with source: instead of input:.
func TestParseLegacyCameras(t *testing.T) {
	f, err := fleet.Parse("cameras.yaml", read(t, "cameras_legacy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Legacy || len(f.Enabled()) != 4 {
		t.Fatalf("legacy=%v enabled=%d, want cameras[] with 4", f.Legacy, len(f.Enabled()))
	}
	cam := f.Stream("cam_webcam")
	if cam == nil || cam.Type != "webcam" || cam.Index == nil || *cam.Index != 0 || cam.Name != "My Desk Webcam" {
		t.Fatalf("cam_webcam = %+v", cam)
	}
	if env := f.Stream("cam03").Env(""); env["SS_SOURCE_PATH"] != "tests/play/2048246-hd_1920_1080_24fps.mp4" {
		t.Fatalf("cam03 env without a base dir: %v", env)
	}
	// streams: present but empty falls back to cameras: as upstream.
	f, err = fleet.Parse("f.yaml", []byte("streams: []\ncameras:\n  - camera_id: c1\n    source: {type: plugin, plugin: x:Y, index: '2'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := f.Streams[0].Env("")
	if env["SS_CAMERA_INDEX"] != "2" || env["SS_INPUT_PLUGIN"] != "x:Y" || env["SS_INPUT_TYPE"] != "plugin" {
		t.Fatalf("plugin stream env %v", env)
	}
}

// Bad files, as an attacker or a typo writes them: each problem names the
// line, the stream and the field; nothing is accepted.
func TestParseRefuses(t *testing.T) {
	long := strings.Repeat("a", fleet.MaxIDLen+1)
	many := "streams:\n" + strings.Repeat("  - {id: x, enabled: false}\n", fleet.MaxStreams+1)
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error, in order of lines
	}{
		{"traversal", "streams:\n  - id: ../x\n    input: {type: rtsp, url: u}\n", []string{"f.yaml:2:", `"../x" is not a valid stream id`}},
		{"dot", "streams:\n  - id: a.b\n    input: {type: rtsp, url: u}\n", []string{"f.yaml:2:", "not a valid stream id"}},
		{"slash", "streams:\n  - id: a/b\n", []string{"not a valid stream id"}},
		{"too long", "streams:\n  - id: " + long + "\n", []string{"not a valid stream id"}},
		{"control", "streams:\n  - id: \"a\\nb\"\n", []string{"not a valid stream id"}},
		{"no id", "streams:\n  - name: x\n    input: {type: rtsp, url: u}\n", []string{"f.yaml:2:", "streams[0].id: missing"}},
		{"duplicate", "streams:\n  - id: s1\n    input: {type: rtsp, url: u}\n  - id: s1\n    input: {type: rtsp, url: v}\n",
			[]string{"f.yaml:4:", `stream "s1": id: duplicate stream id (first defined on line 2)`}},
		{"rtsp without url", "streams:\n  - id: s1\n    input:\n      type: rtsp\n", []string{"f.yaml:4:", `stream "s1": input.url: missing`}},
		{"file without path", "streams:\n  - id: s1\n    input: {type: file}\n", []string{`stream "s1": input.path: missing`}},
		{"plugin without plugin", "streams:\n  - id: s1\n    input: {url: u}\n", []string{`input.type: unsupported input type "plugin"`}},
		{"unknown type", "cameras:\n  - id: s1\n    source: {type: kafka}\n", []string{`source.type: unsupported input type "kafka"`}},
		{"negative index", "streams:\n  - id: s1\n    input:\n      type: webcam\n      index: -1\n", []string{"f.yaml:5:", "input.index: must be >= 0"}},
		{"index text", "streams:\n  - id: s1\n    input: {type: webcam, camera_index: two}\n", []string{`input.camera_index: must be an integer, not "two"`}},
		{"enabled text", "streams:\n  - id: s1\n    enabled: maybe\n    input: {type: rtsp, url: u}\n", []string{"f.yaml:3:", "enabled: must be true or false"}},
		{"url not string", "streams:\n  - id: s1\n    input: {type: rtsp, url: [a]}\n", []string{"input.url: must be a string"}},
		{"input not mapping", "streams:\n  - id: s1\n    input: rtsp\n", []string{"input: must be a mapping"}},
		{"streams not list", "streams: {id: s1}\n", []string{"f.yaml:1:", "streams: must be a list"}},
		{"no streams", "other: 1\n", []string{"streams: missing"}},
		{"empty", "", []string{"fleet file is empty"}},
		{"top list", "- id: s1\n", []string{"top level must be a mapping"}},
		{"bad yaml", "streams:\n  - id: [\n", []string{"f.yaml:", "invalid YAML"}},
		{"too many", many, []string{"more than the limit"}},
		{"too big", "# " + strings.Repeat("x", fleet.MaxFileBytes) + "\n", []string{"more than the limit"}},
		{"two problems", "streams:\n  - id: s1\n    input: {type: rtsp}\n  - id: ../s2\n", []string{"f.yaml:3:", "f.yaml:4:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := fleet.Parse("f.yaml", []byte(c.yaml))
			var fe *fleet.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Parse = %v, %v; want a *fleet.Error", f, err)
			}
			msg := err.Error()
			at := 0
			for _, w := range c.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order)", msg, w)
				}
				at += i
			}
		})
	}
}

// A disabled stream is kept in the file but never selected; asking for an
// unknown one names it (upstream dropped it silently).
func TestSelect(t *testing.T) {
	f, err := fleet.Parse("f.yaml", []byte("streams:\n  - {id: a, input: {type: rtsp, url: u}}\n  - {id: b, enabled: false}\n  - {id: c, input: {type: webcam}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ss []fleet.Stream) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return strings.Join(out, ",")
	}
	all, err := fleet.Select(f, nil)
	if err != nil || ids(all) != "a,c" {
		t.Fatalf("Select(all) = %s, %v", ids(all), err)
	}
	one, err := fleet.Select(f, []string{" c "})
	if err != nil || ids(one) != "c" {
		t.Fatalf("Select(c) = %s, %v", ids(one), err)
	}
	for _, bad := range [][]string{{"b"}, {"zz"}, {"../a"}, {"a", "zz"}, {strings.Repeat("a", 60)}} {
		if _, err := fleet.Select(f, bad); !errors.Is(err, fleet.ErrUnknownStream) {
			t.Errorf("Select(%q) = %v, want ErrUnknownStream", bad, err)
		}
	}
}

func engineOpts() engine.Options {
	return engine.Options{Registry: all.Registry(), Getenv: func(string) string { return "" }}
}

const fleetYAML = `streams:
  - id: s1
    input: {type: plugin, plugin: "schnitzel_stream.nodes.dev:StaticSource"}
  - id: s2
    input:
      type: rtsp
      url: rtsp://127.0.0.1:8554/x
`

// Start applies fleet.<id> per stream with the template and the stream's
// variables, origin fleet, after validating every stream through the
// real engine.
func TestManagerStart(t *testing.T) {
	b := servetest.New(engineOpts())
	m := fleet.New(b, fleet.Options{Engine: engineOpts()})
	res, err := m.Start([]byte(fleetYAML), fleet.DefaultTemplate, nil, "token")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res); got != "[{s1 fleet.s1 started plugin running } {s2 fleet.s2 started rtsp running }]" {
		t.Fatalf("results %s", got)
	}
	calls := b.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls %+v", calls)
	}
	for _, c := range calls {
		id := strings.TrimPrefix(c.Name, "fleet.")
		if c.Op != "apply" || c.Opts.Origin != "fleet" || c.Opts.Actor != "token" || string(c.YAML) != string(fleet.DefaultTemplate) {
			t.Errorf("call %s: %+v", c.Name, c.Opts)
		}
		for _, k := range []string{"SS_STREAM_ID", "SS_CAMERA_ID"} {
			if c.Opts.Env[k] != id {
				t.Errorf("%s: %s = %q", c.Name, k, c.Opts.Env[k])
			}
		}
	}
	if calls[1].Opts.Env["SS_INPUT_URL"] != "rtsp://127.0.0.1:8554/x" || calls[1].Opts.Env["SS_SOURCE_URL"] != "rtsp://127.0.0.1:8554/x" {
		t.Errorf("s2 env %v", calls[1].Opts.Env)
	}
	st := m.Status()
	if len(st) != 2 || st[0].ID != "s1" || st[0].State != serve.StateRunning || st[1].Graph != "fleet.s2" {
		t.Fatalf("status %+v", st)
	}
	// The same start again changes nothing.
	res, err = m.Start([]byte(fleetYAML), fleet.DefaultTemplate, []string{"s1"}, "token")
	if err != nil || len(res) != 1 || res[0].Action != "unchanged" {
		t.Fatalf("second start: %+v, %v", res, err)
	}
}

// One stream whose graph does not validate (its plugin is not
// registered) stops the whole start before any Apply; the error names the
// stream, the fleet file's line and the template's diagnostics.
func TestManagerStartValidatesFirst(t *testing.T) {
	b := servetest.New(engineOpts())
	m := fleet.New(b, fleet.Options{Engine: engineOpts()})
	bad := fleetYAML + "  - id: s3\n    input: {type: plugin, plugin: \"schnitzel_stream.nodes.dev:NoSuchSource\"}\n"
	_, err := m.Start([]byte(bad), fleet.DefaultTemplate, nil, "token")
	var se *fleet.StreamError
	if !errors.As(err, &se) || se.Stream != "s3" || se.Line != 8 {
		t.Fatalf("err = %v, want a StreamError for s3 at line 8", err)
	}
	var inv *engine.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "template.yaml:6") {
		t.Fatalf("err = %v, want the template's diagnostics (template.yaml:6)", err)
	}
	if c := b.Calls(); len(c) != 0 {
		t.Fatalf("Apply was called: %+v", c)
	}
	// A template that is not a graph at all.
	if _, err := m.Start([]byte(fleetYAML), []byte("version: 2\nnodes: 7\n"), nil, "t"); err == nil || len(b.Calls()) != 0 {
		t.Fatalf("bad template: %v, calls %d", err, len(b.Calls()))
	}
	if _, err := m.Start([]byte(fleetYAML), nil, nil, "t"); err == nil {
		t.Fatal("empty template accepted")
	}
}

// The fleet never touches a graph it did not make: a graph named
// fleet.<id> made over the API is neither overwritten nor deleted.
func TestManagerOwnsOnlyFleetGraphs(t *testing.T) {
	b := servetest.New(engineOpts())
	b.Put("fleet.s1", "api", serve.StateRunning, []byte("x"))
	b.Put("other", "api", serve.StateRunning, []byte("x"))
	m := fleet.New(b, fleet.Options{Engine: engineOpts()})
	res, err := m.Start([]byte(fleetYAML), fleet.DefaultTemplate, nil, "t")
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Action != "failed" || !strings.Contains(res[0].Error, "not a fleet graph") || res[1].Action != "started" {
		t.Fatalf("results %+v", res)
	}
	for _, c := range b.Calls() {
		if c.Name == "fleet.s1" {
			t.Fatalf("fleet.s1 (origin api) was applied: %+v", c)
		}
	}
	// Stop all: only fleet.s2 goes.
	res, err = m.Stop(nil, "t")
	if err != nil || len(res) != 1 || res[0].Graph != "fleet.s2" || res[0].Action != "stopped" {
		t.Fatalf("stop all: %+v, %v", res, err)
	}
	if got := len(b.List()); got != 2 {
		t.Fatalf("%d graphs left, want fleet.s1 and other", got)
	}
	// Stop by id: refused for the api graph, not found for a missing one,
	// invalid ids refused before anything.
	res, err = m.Stop([]string{"s1", "s9"}, "t")
	if err != nil || res[0].Action != "failed" || !strings.Contains(res[0].Error, "not a fleet graph") || !strings.Contains(res[1].Error, "no such graph") {
		t.Fatalf("stop s1,s9: %+v, %v", res, err)
	}
	if _, err := m.Stop([]string{"../other"}, "t"); err == nil {
		t.Fatal("Stop accepted ../other")
	}
	for _, c := range b.Calls() {
		if c.Op == "delete" && c.Name != "fleet.s2" {
			t.Fatalf("deleted %s", c.Name)
		}
	}
}

// A failed Apply is reported for that stream; the others still start.
func TestManagerApplyFailure(t *testing.T) {
	b := servetest.New(engineOpts())
	b.FailApply("fleet.s1", errors.New("disk full"))
	m := fleet.New(b, fleet.Options{})
	res, err := m.Start([]byte(fleetYAML), fleet.DefaultTemplate, nil, "t")
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Action != "failed" || res[0].Error != "disk full" || res[1].Action != "started" {
		t.Fatalf("results %+v", res)
	}
}

// Upstream's fleet file with upstream's template: every stream's graph
// (rtsp, file, webcam sources, each given the template's shared config
// block) validates through the real engine.
func TestUpstreamFleetWithTemplateValidates(t *testing.T) {
	b := servetest.New(engineOpts())
	m := fleet.New(b, fleet.Options{Engine: engineOpts()})
	p, err := m.Prepare(fleet.Input{FleetName: "fleet.yaml", Fleet: read(t, "fleet.yaml"), TemplateName: "dev_stream_template_v2.yaml",
		Template: fleet.DefaultTemplate, BaseDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 4 {
		t.Fatalf("%d streams planned", len(p.Streams))
	}
	res := m.Apply(p, "t")
	for _, r := range res {
		if r.Action != "started" {
			t.Errorf("%+v", r)
		}
	}
}

// The longest id still makes a graph name the Backend accepts.
func TestLongestID(t *testing.T) {
	id := strings.Repeat("z", fleet.MaxIDLen)
	b := servetest.New(engineOpts())
	m := fleet.New(b, fleet.Options{Engine: engineOpts()})
	res, err := m.Start([]byte("streams:\n  - id: "+id+"\n    input: {type: webcam}\n"), fleet.DefaultTemplate, nil, "t")
	if err != nil || res[0].Action != "started" {
		t.Fatalf("%+v, %v", res, err)
	}
}

// D-WIZ-2: a stream's values reach the template through ${oc.env:...} on
// the parsed tree, never as text, so quotes and newlines in a value
// cannot add keys or nodes.
func TestValuesCannotInjectYAML(t *testing.T) {
	evil := "rtsp://x\"\n      evil: 1\n  - id: extra"
	f := "streams:\n  - id: s1\n    input:\n      type: plugin\n      plugin: schnitzel_stream.nodes.dev:StaticSource\n      url: " + strconv.Quote(evil) + "\n"
	m := fleet.New(servetest.New(engineOpts()), fleet.Options{Engine: engineOpts()})
	p, err := m.Prepare(fleet.Input{Fleet: []byte(f), Template: fleet.DefaultTemplate})
	if err != nil {
		t.Fatal(err)
	}
	opts := engineOpts()
	opts.LookupEnv = func(k string) (string, bool) { v, ok := p.Env["s1"][k]; return v, ok }
	plan, _, err := engine.Load("t.yaml", fleet.DefaultTemplate, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Graph.Nodes) != 2 {
		t.Fatalf("%d nodes", len(plan.Graph.Nodes))
	}
	src := plan.Graph.Nodes[0].Config
	if v, _ := src.Get("url"); v != evil {
		t.Fatalf("url = %q", v)
	}
	if _, has := src.Get("evil"); has {
		t.Fatal("an injected key appeared")
	}
}
