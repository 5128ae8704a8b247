package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	igraph "github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
	"github.com/schnitzel-stream/schnitzel/internal/ops/service"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// loader is the run's loader over the dev and durable nodes plus a video
// source stand-in (for the ffmpeg check), interpolating from env.
func loader(t *testing.T, env map[string]string) func(string) (*igraph.Plan, error) {
	t.Helper()
	reg := plugin.NewRegistry()
	dev.Register(reg)
	durable.Register(reg)
	plugin.Register(reg, plugin.Spec[struct {
		Path string `yaml:"path"`
	}]{Name: "schnitzel_stream.nodes.video:OpenCvVideoFileSource", Role: plugin.RoleSource, Out: []string{"frame"},
		New: func(struct {
			Path string `yaml:"path"`
		}, plugin.Env) (any, error) {
			return nil, errors.New("not built in doctor tests")
		}})
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return func(path string) (*igraph.Plan, error) {
		g, diags := igraph.LoadFileLimited(path, lookup, igraph.Limits{})
		if g == nil {
			return nil, diags
		}
		plan, vd := igraph.Validate(g, reg, plugin.Policy{Prefixes: plugin.DefaultPrefixes})
		diags = append(diags, vd...)
		if plan == nil || diags.HasErrors() {
			return nil, diags
		}
		return plan, nil
	}
}

// deployment makes config/state/logs directories under a temp dir.
func deployment(t *testing.T) paths.Paths {
	t.Helper()
	root := t.TempDir()
	p := paths.Paths{OS: "linux", Scope: paths.System, Config: filepath.Join(root, "etc"),
		State: filepath.Join(root, "state"), Logs: filepath.Join(root, "logs")}
	for _, d := range []string{p.Config, p.State, p.Logs} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func plentyOfDisk(string) (uint64, uint64, error) { return 100 << 30, 200 << 30, nil }

func find(t *testing.T, r Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, r.Checks)
	return Check{}
}

func writeGraph(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const durableGraph = `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:StaticSource
  - id: queue
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config:
      path: ${oc.env:SCHNITZEL_TEST_QDIR,outputs/queues}/q.sqlite3
edges: [{from: src, to: queue}]
`

func TestHealthyDeployment(t *testing.T) {
	p := deployment(t)
	graph := writeGraph(t, p.Config, durableGraph)
	// A healthy queue file where the graph names it, relative to the state dir.
	qdir := filepath.Join(p.State, "outputs", "queues")
	os.MkdirAll(qdir, 0o750)
	makeDB(t, filepath.Join(qdir, "q.sqlite3"), 50)
	var loaded string
	load := loader(t, nil)
	r := Run(context.Background(), Options{Graph: graph, Paths: p, WorkDir: p.State, DiskFree: plentyOfDisk,
		Getenv: func(string) string { return "" },
		Load:   func(g string) (*igraph.Plan, error) { loaded = g; return load(g) },
		Service: func(context.Context) (service.State, error) {
			return service.State{Manager: service.Systemd, Name: "schnitzel", Installed: true, Running: true}, nil
		},
		MetricsAddr: "127.0.0.1:0",
	})
	if r.Status != OK || r.Failed() {
		t.Fatalf("status %s: %+v", r.Status, r.Checks)
	}
	if loaded != graph {
		t.Errorf("loader not called with the graph: %q", loaded)
	}
	if c := find(t, r, "queue.queue"); !strings.Contains(c.Message, "passes integrity_check") {
		t.Errorf("queue check: %+v", c)
	}
	if c := find(t, r, "ffmpeg"); c.Message != "not needed by this graph" {
		t.Errorf("ffmpeg check: %+v", c)
	}
}

func TestQueueEnvInterpolationAndMissingFile(t *testing.T) {
	p := deployment(t)
	graph := writeGraph(t, p.Config, durableGraph)
	abs := filepath.Join(t.TempDir(), "elsewhere")
	r := Run(context.Background(), Options{Graph: graph, Paths: p, WorkDir: p.State, DiskFree: plentyOfDisk,
		Load: loader(t, map[string]string{"SCHNITZEL_TEST_QDIR": abs})})
	c := find(t, r, "queue.queue")
	if c.Status != OK || !strings.Contains(c.Message, filepath.Join(abs, "q.sqlite3")+" does not exist yet") {
		t.Errorf("%+v", c)
	}
}

// makeDB writes a real queue file with rows rows.
func makeDB(t *testing.T, path string, rows int) {
	t.Helper()
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	recs := make([]queue.Record, rows)
	for i := range recs {
		recs[i] = queue.Record{PacketID: fmt.Sprint("p", i), Kind: "k", SourceID: "s", TS: "2026-01-01T00:00:00Z",
			Payload: fmt.Sprintf(`"%05d-%s"`, i, strings.Repeat("x", 200)), Meta: "{}"}
	}
	if _, err := q.EnqueueBatch(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptQueue(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"not a database", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.Repeat("garbage ", 1000)), 0o644)
		}},
		{"damaged pages", func(t *testing.T, path string) {
			makeDB(t, path, 2000)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			// Scribble over the middle of the file (b-tree pages), keeping
			// the header so the file still opens as a database.
			junk := []byte(strings.Repeat("\xff\x00\x13", 4096))
			if _, err := f.WriteAt(junk, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := deployment(t)
			graph := writeGraph(t, p.Config, durableGraph)
			qdir := filepath.Join(p.State, "outputs", "queues")
			os.MkdirAll(qdir, 0o750)
			tt.corrupt(t, filepath.Join(qdir, "q.sqlite3"))
			r := Run(context.Background(), Options{Graph: graph, Paths: p, WorkDir: p.State, DiskFree: plentyOfDisk,
				Load: loader(t, nil)})
			c := find(t, r, "queue.queue")
			if c.Status != Fail || c.Fix == "" || !r.Failed() {
				t.Errorf("corrupt queue: %+v (report %s)", c, r.Status)
			}
			r = Run(context.Background(), Options{Graph: graph, Paths: p, WorkDir: p.State, DiskFree: plentyOfDisk,
				Load: loader(t, nil), QueueCheck: "quick"})
			if c := find(t, r, "queue.queue"); c.Status != Fail {
				t.Errorf("quick_check missed the corruption: %+v", c)
			}
		})
	}
}

func TestMissingAndUnwritableDirs(t *testing.T) {
	p := deployment(t)
	os.RemoveAll(p.Logs)
	if os.Geteuid() == 0 {
		// root writes through permission bits; /sys refuses even root.
		if probeWrite("/sys") == nil {
			t.Skip("no directory here is unwritable for root")
		}
		p.State = "/sys"
	} else if err := os.Chmod(p.State, 0o500); err != nil {
		t.Fatal(err)
	}
	installed := func(context.Context) (service.State, error) {
		return service.State{Installed: true, Running: true}, nil
	}
	r := Run(context.Background(), Options{Paths: p, DiskFree: plentyOfDisk, Service: installed})
	if c := find(t, r, "dir.logs"); c.Status != Fail || !strings.Contains(c.Message, "does not exist") || c.Fix == "" {
		t.Errorf("missing logs: %+v", c)
	}
	// Without an installed service a missing directory does not matter
	// (a development machine): a warning that says so.
	r2 := Run(context.Background(), Options{Paths: p, DiskFree: plentyOfDisk})
	if c := find(t, r2, "dir.logs"); c.Status != Warn || !strings.Contains(c.Message, "matters only for a service") {
		t.Errorf("missing logs, no service: %+v", c)
	}
	p.Scope = paths.User
	r3 := Run(context.Background(), Options{Paths: p, DiskFree: plentyOfDisk})
	if c := find(t, r3, "dir.logs"); !strings.Contains(c.Fix, "schnitzel service install --user") {
		t.Errorf("user fix lacks --user: %+v", c)
	}
	p.Scope = paths.System
	if c := find(t, r, "dir.state"); c.Status != Fail || !strings.Contains(c.Message, "not writable") {
		t.Errorf("unwritable state: %+v", c)
	}
	if c := find(t, r, "dir.config"); c.Status != OK {
		t.Errorf("config: %+v", c)
	}
	if !r.Failed() {
		t.Error("report not failed")
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := Run(context.Background(), Options{Paths: deployment(t), DiskFree: plentyOfDisk, MetricsAddr: ln.Addr().String()})
	if c := find(t, r, "metrics_port"); c.Status != Fail || !strings.Contains(c.Message, ln.Addr().String()) {
		t.Errorf("%+v", c)
	}
}

func TestFFmpegNeeded(t *testing.T) {
	p := deployment(t)
	graph := writeGraph(t, p.Config, `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.video:OpenCvVideoFileSource", config: {path: a.mp4}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges: [{from: src, to: out}]
`)
	none := func(string) (string, error) { return "", errors.New("not found") }
	r := Run(context.Background(), Options{Graph: graph, Paths: p, DiskFree: plentyOfDisk, LookPath: none, Load: loader(t, nil)})
	if c := find(t, r, "ffmpeg"); c.Status != Fail || !strings.Contains(c.Message, "OpenCvVideoFileSource") {
		t.Errorf("%+v", c)
	}
	plain := writeGraph(t, p.Config, durableGraph)
	r = Run(context.Background(), Options{Graph: plain, Paths: p, DiskFree: plentyOfDisk, LookPath: none, Load: loader(t, nil), QueueCheck: "off"})
	if c := find(t, r, "ffmpeg"); c.Status != OK {
		t.Errorf("%+v", c)
	}
}

func TestGraphInvalid(t *testing.T) {
	p := deployment(t)
	graph := writeGraph(t, p.Config, "version: 2\nnodes: []\n")
	r := Run(context.Background(), Options{Graph: graph, Paths: p, DiskFree: plentyOfDisk,
		Load: func(string) (*igraph.Plan, error) { return nil, errors.New("plugin evil.x is not allowed") }})
	if c := find(t, r, "graph"); c.Status != Fail || !strings.Contains(c.Message, "not allowed") || c.Fix == "" {
		t.Errorf("%+v", c)
	}
	// The validator's message may quote a config value: doctor masks it like validate does.
	r = Run(context.Background(), Options{Graph: graph, Paths: p, DiskFree: plentyOfDisk,
		Load: func(string) (*igraph.Plan, error) {
			return nil, errors.New(`config.timeout_sec: expected a number, got the string "http://u:pw@x/?token=abc"`)
		}})
	if c := find(t, r, "graph"); c.Status != Fail || strings.Contains(c.Message, "pw@") || strings.Contains(c.Message, "abc") {
		t.Errorf("secret not masked: %+v", c)
	}
	r = Run(context.Background(), Options{Graph: filepath.Join(p.Config, "nope.yaml"), Paths: p, DiskFree: plentyOfDisk, Load: loader(t, nil)})
	if c := find(t, r, "graph"); c.Status != Fail {
		t.Errorf("%+v", c)
	}
	bad := writeGraph(t, p.Config, "nodes: [\n")
	r = Run(context.Background(), Options{Graph: bad, Paths: p, DiskFree: plentyOfDisk, Load: loader(t, nil)})
	if c := find(t, r, "graph"); c.Status != Fail || !strings.Contains(c.Message, "graph.yaml:") {
		t.Errorf("broken YAML: want a failure with file:line, got %+v", c)
	}
}

func TestDiskThresholds(t *testing.T) {
	tests := []struct {
		free, total uint64
		want        Status
	}{
		{50 << 20, 100 << 30, Fail},
		{500 << 20, 100 << 30, Warn},
		{4 << 30, 100 << 30, Warn}, // 4%
		{20 << 30, 100 << 30, OK},
	}
	for _, tt := range tests {
		c := diskCheck(Options{DiskFree: func(string) (uint64, uint64, error) { return tt.free, tt.total, nil }}, "disk.state", "/x")
		if c.Status != tt.want {
			t.Errorf("free %d of %d: %s, want %s", tt.free, tt.total, c.Status, tt.want)
		}
	}
	if free, total, err := diskFree(t.TempDir()); err != nil || total == 0 || free > total {
		t.Errorf("real statfs: %d of %d, %v", free, total, err)
	}
}

func TestServiceCheck(t *testing.T) {
	for _, tt := range []struct {
		st   service.State
		err  error
		want Status
	}{
		{service.State{Installed: true, Running: true}, nil, OK},
		{service.State{Installed: true, Detail: "failed"}, nil, Warn},
		{service.State{}, nil, Warn},
		{service.State{}, errors.New("boom"), Warn},
	} {
		c := serviceCheck(context.Background(), Options{Service: func(context.Context) (service.State, error) { return tt.st, tt.err }})
		if c.Status != tt.want {
			t.Errorf("%+v: %s", tt.st, c.Status)
		}
	}
}

func TestEnvFileCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.env")
	if c := envFileCheck(path); c.Status != OK || !strings.Contains(c.Message, "optional") {
		t.Errorf("missing: %+v", c)
	}
	os.WriteFile(path, []byte("A=1\nB='x y'\n"), 0o640)
	if c := envFileCheck(path); c.Status != OK || !strings.Contains(c.Message, "2 variables") {
		t.Errorf("good: %+v", c)
	}
	os.WriteFile(path, []byte("A=1\nnot a line\n"), 0o640)
	if c := envFileCheck(path); c.Status != Fail || !strings.Contains(c.Message, "s.env:2") {
		t.Errorf("bad: %+v", c)
	}
	os.WriteFile(path, []byte("TOKEN=x\n"), 0o644)
	os.Chmod(path, 0o644)
	if c := envFileCheck(path); c.Status != Warn {
		t.Errorf("world-readable: %+v", c)
	}
}

func TestMissingEnvFileVarWarns(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.env")
	r := Run(context.Background(), Options{DiskFree: plentyOfDisk, Getenv: func(k string) string {
		if k == service.EnvFileVar {
			return missing
		}
		return ""
	}})
	if c := find(t, r, "env_file"); c.Status != Warn || !strings.Contains(c.Message, "does not exist") || !strings.Contains(c.Message, service.EnvFileVar) {
		t.Errorf("env_file: %+v", c)
	}
}

// A queue that does not exist yet in a directory the run cannot write
// fails here, not at run time with SQLite's "unable to open database file".
func TestQueueInUnwritableDirFails(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0o500); err != nil {
		t.Fatal(err)
	}
	if probeWrite(locked) == nil {
		// root writes through permission bits; /sys refuses even root.
		if probeWrite("/sys") == nil {
			t.Skip("no directory here is unwritable")
		}
		locked = "/sys"
	}
	c := sqliteCheck("queue.q", filepath.Join(locked, "sub", "q.sqlite3"), true)
	if c.Status != Fail || !strings.Contains(c.Message, "cannot be created") || !strings.Contains(c.Message, locked+" is not writable") {
		t.Errorf("%+v", c)
	}
	c = sqliteCheck("queue.q", filepath.Join(dir, "new", "q.sqlite3"), true)
	if c.Status != OK {
		t.Errorf("writable parent: %+v", c)
	}
}

// A variable set but empty resolves as the run resolves it (to "", not to
// the default): doctor checks /q.sqlite3, the file the run will open.
func TestQueuePathAsTheRunSeesIt(t *testing.T) {
	p := deployment(t)
	graph := writeGraph(t, p.Config, durableGraph)
	r := Run(context.Background(), Options{Graph: graph, Paths: p, WorkDir: p.State, DiskFree: plentyOfDisk,
		Load: loader(t, map[string]string{"SCHNITZEL_TEST_QDIR": ""})})
	c := find(t, r, "queue.queue")
	if !strings.HasPrefix(c.Message, "/q.sqlite3 ") {
		t.Errorf("want the check on /q.sqlite3 (the run's path), got %+v", c)
	}
}
