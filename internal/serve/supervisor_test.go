package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	ionodes "github.com/schnitzel-stream/schnitzel/nodes/io"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const wait = 20 * time.Second

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	ionodes.Register(r)
	plugin.Register(r, plugin.Spec[dev.Empty]{
		Name: "schnitzel_stream.test:Stuck", Role: plugin.RoleSink, Summary: "waits in Process until its context is cancelled",
		New: func(dev.Empty, plugin.Env) (any, error) { return stuck{}, nil },
	})
	plugin.RegisterJob(r, plugin.JobSpec{Name: "schnitzel_stream.test:Job", Summary: "a v1 job", New: func() plugin.Job { return nil }})
	return r
}

type stuck struct{}

func (stuck) Process(ctx context.Context, _ *packet.Packet, _ plugin.Emitter) error {
	<-ctx.Done()
	return ctx.Err()
}

// ticker is a graph that runs until stopped: TickerSource every 5 ms into
// a discarding sink.
const ticker = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.005}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:Identity"}
edges:
  - {from: src, to: out}
`

func jsonlGraph(path string) string {
	return `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.005}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.file_sink:JsonlSink", config: {path: "` + filepath.ToSlash(path) + `", fsync: never}}
edges:
  - {from: src, to: out}
`
}

const faulty = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0.002}}
  - {id: f, plugin: "schnitzel_stream.nodes.dev:FaultNode", config: {after: 3, mode: panic}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:Identity"}
edges:
  - {from: src, to: f}
  - {from: f, to: out}
`

type env struct {
	graphs, state string
	audit         *audit.Log
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := t.TempDir()
	a, err := audit.Open(filepath.Join(d, "audit.jsonl"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &env{graphs: filepath.Join(d, "graphs.d"), state: filepath.Join(d, "state"), audit: a}
}

func (e *env) config(mod ...func(*Config)) Config {
	c := Config{GraphsDir: e.graphs, StateDir: e.state, Engine: engine.Options{Registry: registry()},
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, DrainTimeout: time.Second,
		WatchInterval: -1, Audit: e.audit, LookupEnv: func(string) (string, bool) { return "", false }}
	for _, m := range mod {
		m(&c)
	}
	return c
}

// start runs a Supervisor until the test ends (or stop is called).
func start(t *testing.T, cfg Config) (*Supervisor, func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("Run did not return after cancel")
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	t.Cleanup(stop)
	poll.Until(t, wait, "Run to start", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.running })
	return s, stop
}

func status(t *testing.T, s *Supervisor, name string) GraphStatus {
	t.Helper()
	for _, st := range s.List() {
		if st.Name == name {
			return st
		}
	}
	return GraphStatus{}
}

func metric(rep *engine.Report, key string) int64 {
	if rep == nil {
		return 0
	}
	v, _ := rep.Metrics.Get(key)
	n, _ := v.(int64)
	return n
}

func auditEvents(t *testing.T, a *audit.Log, action string) []audit.Event {
	t.Helper()
	evs, err := a.Tail(time.Time{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestApplyRunsWithRatesAndReport(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config())
	res, err := s.Apply("tick", []byte(ticker), ApplyOptions{})
	if err != nil || !res.Created || res.Reloaded || res.Unchanged {
		t.Fatalf("apply: %+v %v", res, err)
	}
	poll.Until(t, wait, "rates > 0", func() bool {
		st := status(t, s, "tick")
		return st.State == StateRunning && st.InPerSec > 0 && st.OutPerSec > 0
	})
	rep, err := s.Report("tick")
	if err != nil || metric(rep, "packets.source_emitted_total") == 0 || rep.Status != "ok" {
		t.Fatalf("live report %+v %v", rep, err)
	}
	d, err := s.Get("tick")
	if err != nil {
		t.Fatal(err)
	}
	if d.YAML != ticker || d.Origin != "api" || d.Generation != 1 || d.Desired != "running" {
		t.Errorf("detail %+v", d.GraphStatus)
	}
	if len(d.Nodes) != 2 || d.Nodes[1].ID != "out" || d.Nodes[1].InboxMax != 1024 || d.Nodes[0].InboxMax != 0 || d.Nodes[1].Consumed == 0 || d.Nodes[0].Kind != "source" {
		t.Errorf("nodes %+v", d.Nodes)
	}
	if len(d.Edges) != 1 || d.Edges[0] != (Edge{From: "src", To: "out"}) {
		t.Errorf("edges %+v", d.Edges)
	}
	if d.Report == nil || metric(d.Report, "node.out.consumed") == 0 {
		t.Errorf("detail report %+v", d.Report)
	}
	b, err := os.ReadFile(filepath.Join(e.graphs, "tick.yaml"))
	if err != nil || string(b) != ticker {
		t.Errorf("graph file %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(e.graphs, "tick.yaml")); err != nil || (fi.Mode().Perm()&0o077 != 0 && os.PathSeparator == '/') {
		t.Errorf("graph file mode %v %v", fi.Mode(), err)
	}

	// Stop: drained, stopped, desired stopped; Start: running again.
	if err := s.Stop("tick", "test"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "tick"); st.State != StateStopped || st.Desired != "stopped" || st.Status != "stopped" {
		t.Errorf("after stop: %+v", st)
	}
	if rep, _ := s.Report("tick"); rep == nil || !rep.Stopped {
		t.Errorf("last report after stop: %+v", rep)
	}
	if err := s.Start("tick", "test"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "running after start", func() bool { return status(t, s, "tick").State == StateRunning })
	if err := s.Restart("tick", "test"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "tick"); st.State != StateRunning {
		t.Errorf("after restart: %+v", st)
	}

	if err := s.Delete("tick", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("tick"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.graphs, "tick.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after delete: %v", err)
	}
	for _, f := range []func() error{
		func() error { return s.Delete("tick", "t") }, func() error { return s.Start("tick", "t") },
		func() error { return s.Stop("tick", "t") }, func() error { return s.Restart("tick", "t") },
		func() error { _, err := s.Report("tick"); return err }, func() error { _, err := s.Tap("tick", "out", ""); return err },
	} {
		if err := f(); !errors.Is(err, ErrNotFound) {
			t.Errorf("on a deleted graph: %v, want ErrNotFound", err)
		}
	}
}

func TestReloadSwapsVersions(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config())
	if _, err := s.Apply("g", []byte(ticker), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "first version producing", func() bool { r, _ := s.Report("g"); return metric(r, "node.out.consumed") > 0 })
	out := filepath.Join(t.TempDir(), "out.jsonl")
	res, err := s.Apply("g", []byte(jsonlGraph(out)), ApplyOptions{})
	if err != nil || !res.Reloaded || res.Created || res.Unchanged || res.ReloadTime <= 0 {
		t.Fatalf("reload: %+v %v", res, err)
	}
	if st := status(t, s, "g"); st.Generation != 2 || st.State != StateRunning {
		t.Errorf("after reload: %+v", st)
	}
	poll.Until(t, wait, "the new version writing lines", func() bool {
		b, _ := os.ReadFile(out)
		return bytes.Count(b, []byte("\n")) >= 3
	})
	if d, _ := s.Get("g"); len(d.Nodes) != 2 || d.Nodes[1].Plugin != "schnitzel_stream.nodes.file_sink:JsonlSink" {
		t.Errorf("nodes after reload: %+v", d.Nodes)
	}
	// Same bytes, same env: nothing happens.
	res, err = s.Apply("g", []byte(jsonlGraph(out)), ApplyOptions{})
	if err != nil || !res.Unchanged || res.Reloaded || res.ReloadTime != 0 {
		t.Fatalf("same again: %+v %v", res, err)
	}
	if st := status(t, s, "g"); st.Generation != 2 {
		t.Errorf("generation after an unchanged apply: %d", st.Generation)
	}
	// Different env is a change.
	res, err = s.Apply("g", []byte(jsonlGraph(out)), ApplyOptions{Env: map[string]string{"SS_CAMERA_ID": "c1"}})
	if err != nil || !res.Reloaded || status(t, s, "g").Generation != 3 {
		t.Fatalf("env change: %+v %v", res, err)
	}
}

func TestInvalidReloadKeepsTheOldVersion(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config(func(c *Config) { c.WatchInterval = 10 * time.Millisecond }))
	if _, err := s.Apply("g", []byte(ticker), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(ticker, "Identity", "NoSuchSink", 1)
	res, err := s.Apply("g", []byte(bad), ApplyOptions{})
	var ie *engine.InvalidError
	if !errors.As(err, &ie) || len(ie.Diags.Errors()) == 0 || res.Reloaded {
		t.Fatalf("invalid apply: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.graphs, "g.yaml")); string(b) != ticker {
		t.Errorf("the file changed: %q", b)
	}
	st := status(t, s, "g")
	if st.State != StateRunning || st.Generation != 1 || !strings.Contains(st.ReloadError, "NoSuchSink") {
		t.Errorf("after the invalid apply: %+v", st)
	}
	r1, _ := s.Report("g")
	poll.Until(t, wait, "the old version still producing", func() bool {
		r2, _ := s.Report("g")
		return metric(r2, "node.out.consumed") > metric(r1, "node.out.consumed")
	})
	// A new graph that is invalid is not created.
	if _, err := s.Apply("other", []byte(bad), ApplyOptions{}); !errors.As(err, &ie) {
		t.Fatalf("invalid new graph: %v", err)
	}
	if _, err := s.Get("other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("invalid new graph exists: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.graphs, "other.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("invalid new graph written: %v", err)
	}

	// The same through the watcher: the file is edited into an invalid one.
	if err := os.WriteFile(filepath.Join(e.graphs, "g.yaml"), []byte(strings.Replace(ticker, "TickerSource", "Nope", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "an audited refused reload", func() bool {
		for _, ev := range auditEvents(t, e.audit, "graph.reload") {
			if ev.Status == "error" && ev.Target == "g" && ev.Actor == "supervisor" && strings.Contains(ev.Reason, "Nope") {
				return true
			}
		}
		return false
	})
	if st := status(t, s, "g"); st.State != StateRunning || st.Generation != 1 || !strings.Contains(st.ReloadError, "Nope") {
		t.Errorf("after the invalid edit: %+v", st)
	}
	// Applying the running version again is a change now (the disk holds
	// the broken one), and clears ReloadError.
	res, err = s.Apply("g", []byte(ticker), ApplyOptions{})
	if err != nil || res.Unchanged || !res.Reloaded {
		t.Fatalf("re-apply: %+v %v", res, err)
	}
	if st := status(t, s, "g"); st.ReloadError != "" || st.Generation != 2 {
		t.Errorf("after re-apply: %+v", st)
	}
}

func TestDesiredStateSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	withKind := strings.Replace(ticker, "interval_sec: 0.005", `interval_sec: 0.005, kind: "${oc.env:MY_KIND}"`, 1)
	s1, stop := start(t, e.config())
	if _, err := s1.Apply("a", []byte(ticker), ApplyOptions{Origin: "fleet"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Apply("b", []byte(ticker), ApplyOptions{Stopped: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Apply("c", []byte(withKind), ApplyOptions{Env: map[string]string{"MY_KIND": "cam", "RTSP_PASSWORD": "pw"}}); err != nil {
		t.Fatal(err)
	}
	if err := s1.Stop("a", "t"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s1, "b"); st.State != StateStopped || st.Desired != "stopped" {
		t.Fatalf("b applied stopped: %+v", st)
	}
	stop()

	s2, _ := start(t, e.config())
	got := map[string]GraphStatus{}
	for _, st := range s2.List() {
		got[st.Name] = st
	}
	if len(got) != 3 || got["a"].Desired != "stopped" || got["b"].Desired != "stopped" || got["c"].Desired != "running" || got["a"].Origin != "fleet" {
		t.Fatalf("after restart: %+v", got)
	}
	poll.Until(t, wait, "c running with its env", func() bool { return status(t, s2, "c").State == StateRunning })
	if st := status(t, s2, "a"); st.State != StateStopped {
		t.Errorf("a: %+v", st)
	}
	d, _ := s2.Get("c")
	if d.Env["MY_KIND"] != "cam" || d.Env["RTSP_PASSWORD"] != "***" {
		t.Errorf("c env as shown: %v", d.Env)
	}
	if strings.Contains(d.YAML, "cam") || !strings.Contains(d.YAML, "${oc.env:MY_KIND}") {
		t.Errorf("YAML is not as written: %s", d.YAML)
	}
	tap, err := s2.Tap("c", "src", "")
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	line := <-tap.Events()
	if !bytes.Contains(line, []byte(`"kind": "cam"`)) {
		t.Errorf("packet of c: %s", line)
	}
}

func TestEnvIsRestricted(t *testing.T) {
	e := newEnv(t)
	procEnv := map[string]string{"SECRET_X": "topsecret123", "SS_KIND": "ss", "ALLOWED_KIND": "al"}
	s, err := New(e.config(func(c *Config) {
		c.AllowEnv = []string{"ALLOWED_KIND"}
		c.LookupEnv = func(k string) (string, bool) { v, ok := procEnv[k]; return v, ok }
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	graphWith := func(v string) []byte {
		return []byte(strings.Replace(ticker, "interval_sec: 0.005", `interval_sec: 0.005, kind: "${oc.env:`+v+`}"`, 1))
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"SS_KIND", true}, {"ALLOWED_KIND", true}, {"SECRET_X", false}, {"HOME", false}} {
		diags, err := s.Validate("g", graphWith(tc.name))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if strings.Contains(diags.Error(), "topsecret123") {
			t.Errorf("%s: secret in diags: %v", tc.name, diags)
		}
	}
	// A per-graph variable wins over the process env and is not restricted.
	if _, err := s.Apply("g", graphWith("SECRET_X"), ApplyOptions{Env: map[string]string{"SECRET_X": "mine"}}); err != nil {
		t.Errorf("per-graph variable: %v", err)
	}
}

func TestFailingGraphBacksOffAndNeighbourRuns(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config())
	if _, err := s.Apply("steady", []byte(ticker), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("chaos", []byte(faulty), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	sawBackoff := false
	poll.Until(t, wait, "chaos restarted 4 times", func() bool {
		st := status(t, s, "chaos")
		if st.State == StateBackoff && st.BackoffUntil != nil {
			sawBackoff = true
		}
		return st.Restarts >= 4
	})
	st := status(t, s, "chaos")
	if !sawBackoff || !strings.Contains(st.LastError, "deliberate panic") {
		t.Errorf("chaos: saw backoff %v, %+v", sawBackoff, st)
	}
	r1, _ := s.Report("steady")
	poll.Until(t, wait, "steady producing meanwhile", func() bool {
		r2, _ := s.Report("steady")
		return metric(r2, "node.out.consumed") > metric(r1, "node.out.consumed")+10
	})
	if st := status(t, s, "steady"); st.State != StateRunning || st.Restarts != 0 || st.LastError != "" || st.Generation != 1 {
		t.Errorf("steady disturbed: %+v", st)
	}
	if evs := auditEvents(t, e.audit, "graph.restart_after_failure"); len(evs) < 4 || evs[0].Target != "chaos" || evs[0].Actor != "supervisor" {
		t.Errorf("restart audit: %+v", evs)
	}
	// A stop ends the loop; nothing restarts it.
	if err := s.Stop("chaos", "t"); err != nil {
		t.Fatal(err)
	}
	n := status(t, s, "chaos").Restarts
	if st := status(t, s, "chaos"); st.State != StateStopped || st.BackoffUntil != nil {
		t.Errorf("after stop: %+v", st)
	}
	s.mu.Lock()
	g := s.graphs["chaos"]
	timer := g.timer
	s.mu.Unlock()
	if timer != nil || status(t, s, "chaos").Restarts != n {
		t.Error("a restart is still scheduled after stop")
	}
}

// TestBackoffGrowsAndResets checks the schedule itself: doubling up to
// the maximum, and back to the minimum after a run that lasted.
func TestBackoffGrowsAndResets(t *testing.T) {
	e := newEnv(t)
	s, err := New(e.config(func(c *Config) { c.BackoffMin, c.BackoffMax = time.Hour, 4*time.Hour }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.running = true
	g := &graphRec{name: "x", desired: desiredRunning}
	s.graphs["x"] = g
	var got []time.Duration
	for i, lasted := range []time.Duration{0, 0, 0, 0, 5 * time.Hour, 0} {
		r := &run{err: errors.New("boom"), done: make(chan struct{})}
		if lasted > 0 {
			r.startedAt = time.Now().Add(-lasted)
		}
		g.cur = r
		s.finish(g, r, "")
		if g.state != StateBackoff {
			t.Fatalf("run %d: state %s", i, g.state)
		}
		got = append(got, time.Until(g.backoffUntil).Round(time.Hour))
		g.timer.Stop()
	}
	want := []time.Duration{1, 2, 4, 4, 1, 2}
	for i := range want {
		if got[i] != want[i]*time.Hour {
			t.Fatalf("backoff schedule %v, want %v hours", got, want)
		}
	}
}

func TestWatcherFollowsTheDirectory(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config(func(c *Config) { c.WatchInterval = 10 * time.Millisecond }))
	path := filepath.Join(e.graphs, "w.yaml")
	if err := os.WriteFile(path, []byte(ticker), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"bad name.yaml", "-x.yaml", "a.yaml.yaml", "CON.yaml", ".hidden.yaml"} {
		if err := os.WriteFile(filepath.Join(e.graphs, bad), []byte(ticker), 0o600); err != nil && bad != "CON.yaml" {
			t.Fatal(err)
		}
	}
	poll.Until(t, wait, "the new file running", func() bool { return status(t, s, "w").State == StateRunning })
	if st := status(t, s, "w"); st.Origin != "file" || st.Generation != 1 {
		t.Errorf("added: %+v", st)
	}
	out := filepath.Join(t.TempDir(), "w.jsonl")
	if err := os.WriteFile(path, []byte(jsonlGraph(out)), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "the changed file reloaded", func() bool {
		st := status(t, s, "w")
		b, _ := os.ReadFile(out)
		return st.Generation == 2 && st.State == StateRunning && len(b) > 0
	})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "the removed file's graph gone", func() bool { _, err := s.Get("w"); return errors.Is(err, ErrNotFound) })
	if l := s.List(); len(l) != 0 {
		t.Errorf("graphs left: %+v (invalid names must be ignored)", l)
	}
	// The removal's audit line may follow the graph leaving the list.
	changes := map[string]bool{}
	if !poll.Wait(wait, func() bool {
		for _, ev := range auditEvents(t, e.audit, "graph.reload") {
			if ev.Target == "w" && ev.Status == "ok" {
				changes[ev.Meta["change"].(string)] = true
			}
		}
		return changes["added"] && changes["changed"] && changes["removed"]
	}) {
		t.Errorf("audited changes %v", changes)
	}
	state, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
	if bytes.Contains(state, []byte(`"w"`)) {
		t.Errorf("state still names the removed graph: %s", state)
	}
}

func TestInvalidAndV1FilesFail(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(e.graphs, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"broken.yaml": "version: 2\nnodes: [",
		"job.yml":     "version: 1\njob: schnitzel_stream.test:Job\nconfig: {}\n",
		"fine.yaml":   ticker,
	}
	for f, body := range files {
		if err := os.WriteFile(filepath.Join(e.graphs, f), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := start(t, e.config())
	poll.Until(t, wait, "fine running", func() bool { return status(t, s, "fine").State == StateRunning })
	for name, want := range map[string]string{"broken": "broken.yaml", "job": "not supported under schnitzel serve"} {
		st := status(t, s, name)
		if st.State != StateFailed || !strings.Contains(st.LastError, want) || st.Restarts != 0 {
			t.Errorf("%s: %+v", name, st)
		}
		var ie *engine.InvalidError
		if err := s.Start(name, "t"); !errors.As(err, &ie) {
			t.Errorf("start %s: %v, want the InvalidError", name, err)
		}
	}
	if evs := auditEvents(t, e.audit, "graph.failed"); len(evs) != 2 {
		t.Errorf("graph.failed events: %+v", evs)
	}
	var ie *engine.InvalidError
	if _, err := s.Apply("job", []byte(files["job.yml"]), ApplyOptions{}); !errors.As(err, &ie) || !strings.Contains(err.Error(), "v1 job") {
		t.Errorf("apply v1: %v", err)
	}
	// Fixing the file over the API runs it (into the same .yml file).
	if _, err := s.Apply("job", []byte(ticker), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "the fixed graph running", func() bool { return status(t, s, "job").State == StateRunning })
	if b, _ := os.ReadFile(filepath.Join(e.graphs, "job.yml")); string(b) != ticker {
		t.Errorf("job.yml: %q", b)
	}
}

func TestBadNamesAreRefused(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config())
	names := []string{"", "a/b", "..", "../x", `a\b`, "a\x00b", "a\nb", "a\x7fb", ".x", "-x", "x.yaml", "X.YML", "con", "nul.txt",
		strings.Repeat("a", 65), "a b", "ü", "a:b", "/etc/passwd"}
	for _, name := range names {
		if _, err := s.Apply(name, []byte(ticker), ApplyOptions{}); !errors.Is(err, ErrBadName) {
			t.Errorf("apply %q: %v", name, err)
		}
		if _, err := s.Get(name); !errors.Is(err, ErrBadName) {
			t.Errorf("get %q: %v", name, err)
		}
		if err := s.Delete(name, "t"); !errors.Is(err, ErrBadName) {
			t.Errorf("delete %q: %v", name, err)
		}
		if _, err := s.Tap(name, "src", ""); !errors.Is(err, ErrBadName) {
			t.Errorf("tap %q: %v", name, err)
		}
		if name != "" {
			if _, err := s.Validate(name, []byte(ticker)); !errors.Is(err, ErrBadName) {
				t.Errorf("validate %q: %v", name, err)
			}
		}
	}
	for _, good := range []string{"a", "cam-01", "fleet.cam_1", "A.b-c_d", strings.Repeat("z", 64), "a..b"} {
		if err := CheckName(good); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(e.graphs))
	for _, en := range entries {
		if en.Name() != "graphs.d" && en.Name() != "state" && en.Name() != "audit.jsonl" {
			t.Errorf("a file escaped the graphs dir: %s", en.Name())
		}
	}
}

func TestSecondSupervisorIsLockedOut(t *testing.T) {
	e := newEnv(t)
	s, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(e.config())
	lock := filepath.Join(e.state, "serve.lock")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), "pid "+itoa(os.Getpid())) {
		t.Fatalf("second New: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := New(e.config())
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	s2.Close()
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestCorruptStateFileIsRefused(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.state, "state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(e.config()); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("New: %v", err)
	}
	// ... and the lock was released.
	if err := os.Remove(filepath.Join(e.state, "state.json")); err != nil {
		t.Fatal(err)
	}
	s, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestDrainIsBounded: a node that never finishes its packet holds a stop
// or a reload up only for DrainTimeout (plus the runtime's grace), and the
// report says what was abandoned.
func TestDrainIsBounded(t *testing.T) {
	e := newEnv(t)
	s, _ := start(t, e.config(func(c *Config) { c.DrainTimeout = 100 * time.Millisecond }))
	body := strings.Replace(ticker, "schnitzel_stream.nodes.dev:Identity", "schnitzel_stream.test:Stuck", 1)
	if _, err := s.Apply("g", []byte(body), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, wait, "the sink holding a packet", func() bool { r, _ := s.Report("g"); return metric(r, "node.out.consumed") > 0 })
	res, err := s.Apply("g", []byte(strings.Replace(body, "0.005", "0.004", 1)), ApplyOptions{})
	if err != nil || !res.Reloaded || res.ReloadTime < 100*time.Millisecond || res.ReloadTime > 10*time.Second {
		t.Fatalf("reload %+v %v", res, err)
	}
	poll.Until(t, wait, "the new sink holding a packet", func() bool { r, _ := s.Report("g"); return metric(r, "node.out.consumed") > 0 })
	t0 := time.Now()
	if err := s.Stop("g", "t"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("stop took %v with a 100ms drain bound", took)
	}
	rep, _ := s.Report("g")
	if rep == nil || !rep.StopExpired || rep.Error != nil {
		t.Errorf("report after a bounded stop: %+v", rep)
	}
	if st := status(t, s, "g"); st.State != StateStopped || st.LastError != "" {
		t.Errorf("after stop: %+v", st)
	}
}

// TestApplyBeforeRunAndAfterShutdown: before Run a graph is recorded, not
// started; Run starts it; after shutdown mutations are refused and the
// desired state on disk is untouched by the shutdown itself.
func TestApplyBeforeRunAndAfterShutdown(t *testing.T) {
	e := newEnv(t)
	s, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("early", []byte(ticker), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "early"); st.State != StateStopped || st.Desired != "running" {
		t.Fatalf("before Run: %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	poll.Until(t, wait, "Run starting the early graph", func() bool { return status(t, s, "early").State == StateRunning })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "early"); st.State != StateStopped || st.Desired != "running" {
		t.Errorf("after shutdown: %+v", st)
	}
	if _, err := s.Apply("late", []byte(ticker), ApplyOptions{}); !errors.Is(err, errClosed) {
		t.Errorf("apply after shutdown: %v", err)
	}
	if err := s.Start("early", "t"); !errors.Is(err, errClosed) {
		t.Errorf("start after shutdown: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil || sf.Graphs["early"].Desired != "running" {
		t.Errorf("state after shutdown: %s %v", b, err)
	}
}
