package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// report is the part of the run report the tests read.
type report struct {
	TS           string           `json:"ts"`
	Status       string           `json:"status"`
	Engine       string           `json:"engine"`
	GraphVersion int              `json:"graph_version"`
	Graph        string           `json:"graph"`
	Metrics      map[string]int64 `json:"metrics"`
	Error        *struct {
		Node    string `json:"node"`
		Message string `json:"message"`
	} `json:"error"`
}

func lastReport(t *testing.T, stdout string) report {
	t.Helper()
	ls := lines(stdout)
	if len(ls) == 0 {
		t.Fatal("no output")
	}
	var r report
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &r); err != nil {
		t.Fatalf("last stdout line is not the report: %v\n%s", err, ls[len(ls)-1])
	}
	return r
}

var printLine = regexp.MustCompile(`^DEV \{"packet_id": "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", "ts": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00", "kind": "demo", "source_id": "demo01", "payload": \{"message": "hello", "value": 1\}, "meta": \{\}\}$`)

func TestInprocDemoMatchesUpstream(t *testing.T) {
	r := run(t, "", nil, "--graph", "configs/graphs/dev_inproc_demo_v2.yaml", "--report-json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	ls := lines(r.stdout)
	if len(ls) != 2 || !printLine.MatchString(ls[0]) {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	rep := lastReport(t, r.stdout)
	// Upstream's report for this graph (spec core.md §6), ids and ts aside.
	want := map[string]int64{
		"packets.consumed_total": 1, "packets.produced_total": 1, "packets.source_emitted_total": 1,
		"node.src.consumed": 0, "node.src.produced": 1, "node.src.is_source": 1, "node.src.is_sink": 0,
		"node.out.consumed": 1, "node.out.produced": 0, "node.out.is_source": 0, "node.out.is_sink": 1,
	}
	for k, v := range want {
		if got, ok := rep.Metrics[k]; !ok || got != v {
			t.Errorf("metric %s = %d (present %v), want %d", k, got, ok, v)
		}
	}
	if rep.Status != "ok" || rep.Engine != "inproc" || rep.GraphVersion != 2 || rep.Graph != "configs/graphs/dev_inproc_demo_v2.yaml" {
		t.Errorf("report header: %+v", rep)
	}
	// Upstream prints the summary line without --report-json.
	r = run(t, "", nil, "--graph", "configs/graphs/dev_inproc_demo_v2.yaml")
	if ls := lines(r.stdout); len(ls) != 2 || ls[1] != "v2 graph executed (in-proc): nodes=2 edges=1 packets=1" {
		t.Errorf("summary: %q", r.stdout)
	}
}

func TestEveryExampleGraphValidates(t *testing.T) {
	r := run(t, "", nil, "validate", "configs/graphs/...", "configs/bench/...", "configs/nats/...")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// Broken graphs live in testdata/broken: the graph, a line "--- expect",
// then one expected substring of stderr per line.
func TestBrokenGraphs(t *testing.T) {
	files, _ := filepath.Glob("testdata/broken/*.yaml")
	if len(files) == 0 {
		t.Fatal("no broken graphs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			graphPart, expectPart, ok := strings.Cut(string(data), "\n--- expect\n")
			if !ok {
				t.Fatal("missing --- expect marker")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "graph.yaml")
			if err := os.WriteFile(path, []byte(graphPart+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"validate", "--graph", "graph.yaml"}, {"--graph", "graph.yaml", "--report-json"}} {
				r := run(t, dir, nil, args...)
				if r.code != 2 {
					t.Errorf("%v: exit %d, want 2\nstderr:\n%s", args, r.code, r.stderr)
				}
				for _, want := range lines(expectPart) {
					if want = strings.TrimSpace(want); want != "" && !strings.Contains(r.stderr, want) {
						t.Errorf("%v: stderr lacks %q:\n%s", args, want, r.stderr)
					}
				}
				if args[0] != "validate" && strings.Contains(r.stdout, "packet_id") {
					t.Errorf("an invalid graph ran partly:\n%s", r.stdout)
				}
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte("version: 2\nnodes:\n  - id: a\n    kind: source\n    plugin: schnitzel_stream.nodes.dev:StaticSource\nedges:\n  - {from: a, to: b}\n"), 0o644)
	r := run(t, dir, nil, "validate", "--graph", "g.yaml", "--json")
	var out struct {
		Valid  bool
		Errors []struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Subject string `json:"subject"`
			Message string `json:"message"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if r.code != 2 || out.Valid || len(out.Errors) != 1 || out.Errors[0].Line != 7 || out.Errors[0].Subject != "edge a -> b" || out.Errors[0].Message != `unknown node "b"` {
		t.Errorf("exit %d: %+v", r.code, out)
	}
}

func TestMissingGraphFile(t *testing.T) {
	r := run(t, "", nil, "--graph", "does/not/exist.yaml")
	if r.code != 2 || !strings.Contains(r.stderr, "graph spec not found: does/not/exist.yaml") {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"nosuchcommand"}, {"--max-events", "x"}, {"--log-level", "loud", "--graph", "configs/graphs/dev_inproc_demo_v2.yaml"}} {
		if r := run(t, "", nil, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2", args, r.code)
		}
	}
	for flag, want := range map[string]string{"--inbox-max": "--inbox-max must be > 0, got 0", "--inbox-max-bytes": "--inbox-max-bytes must be > 0, got 0"} {
		r := run(t, "", nil, "--graph", "configs/graphs/dev_inproc_demo_v2.yaml", flag, "0")
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s 0: exit %d, stderr %q; want 2 and %q", flag, r.code, r.stderr, want)
		}
	}
}

func TestDefaultRunAndHelp(t *testing.T) {
	r := run(t, t.TempDir(), nil)
	if r.code != 0 || !strings.Contains(r.stdout, "graph executed") {
		t.Errorf("default run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"--help"}, {"validate", "--help"}, {"plugins", "--help"}, {"graph", "dot", "--help"}, {"version"}} {
		if r := run(t, "", nil, args...); r.code != 0 || r.stdout == "" {
			t.Errorf("%v: exit %d", args, r.code)
		}
	}
}

func TestAllowlistFromEnvironment(t *testing.T) {
	r := run(t, "", []string{"ALLOWED_PLUGIN_PREFIXES=acme."}, "validate", "--graph", "configs/graphs/dev_inproc_demo_v2.yaml")
	if r.code != 2 || !strings.Contains(r.stderr, `is not allowed: module "schnitzel_stream.nodes.dev" is not under ALLOWED_PLUGIN_PREFIXES (acme.)`) {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
	r = run(t, "", []string{"ALLOWED_PLUGIN_PREFIXES=acme.", "ALLOW_ALL_PLUGINS=true"}, "validate", "--graph", "configs/graphs/dev_inproc_demo_v2.yaml")
	if r.code != 0 {
		t.Errorf("ALLOW_ALL_PLUGINS: exit %d: %s", r.code, r.stderr)
	}
}

func TestPluginsListsSpecsAndDocsAreGenerated(t *testing.T) {
	r := run(t, "", nil, "plugins", "--json")
	var infos []struct {
		Name   string `json:"name"`
		Config []struct {
			Key string `json:"key"`
		} `json:"config"`
		Metrics []struct {
			Name  string `json:"name"`
			Help  string `json:"help"`
			Gauge bool   `json:"gauge"`
			Loss  bool   `json:"loss"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) == 0 {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	found, deadLetters := false, false
	for _, in := range infos {
		if in.Name == "schnitzel_stream.nodes.dev:PrintSink" && len(in.Config) == 2 {
			found = true
		}
		if in.Name == "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource" {
			for _, m := range in.Metrics {
				deadLetters = deadLetters || m.Name == "dead_lettered_total" && m.Loss && !m.Gauge && m.Help != ""
			}
		}
	}
	if !found {
		t.Error("PrintSink with its 2 config keys not listed")
	}
	if !deadLetters {
		t.Error("SqliteQueueSource's metrics do not list dead_lettered_total as a loss counter with help")
	}
	md := run(t, "", nil, "plugins", "--format", "markdown")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "nodes.md"))
	if err != nil || string(doc) != md.stdout {
		t.Error("docs/nodes.md is stale: regenerate with `go run ./cmd/schnitzel plugins --format markdown > docs/nodes.md`")
	}
}

func TestGraphDrawings(t *testing.T) {
	r := run(t, "", nil, "graph", "dot", "configs/graphs/dev_inproc_demo_v2.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, `"src" -> "out";`) {
		t.Errorf("dot: %s %s", r.stdout, r.stderr)
	}
	r = run(t, "", nil, "graph", "mermaid", "configs/graphs/dev_inproc_demo_v2.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "src --> out") {
		t.Errorf("mermaid: %s %s", r.stdout, r.stderr)
	}
}

func TestMaxEventsAndReportFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(`version: 2
nodes:
  - {id: tick, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: 0}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink", config: {prefix: "T "}}
edges:
  - {from: tick, to: out}
`), 0o644)
	r := run(t, dir, nil, "--graph", "g.yaml", "--max-events", "137", "--report-file", "out/report.json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if n := len(lines(r.stdout)); n != 137 {
		t.Errorf("printed %d lines, want exactly 137", n)
	}
	data, err := os.ReadFile(filepath.Join(dir, "out", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep := lastReport(t, string(data))
	if rep.Metrics["packets.source_emitted_total"] != 137 || rep.Metrics["node.out.consumed"] != 137 {
		t.Errorf("report: %+v", rep.Metrics)
	}
}

func TestNodeFailureGivesErrorReportAndExit1(t *testing.T) {
	dir := t.TempDir()
	// An inbox with policy error overflows: a runtime failure of node out.
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
  - {id: burst, plugin: "schnitzel_stream.nodes.dev:BurstNode", config: {count: 50}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:Identity", config: {__runtime__: {inbox_max: 3, inbox_overflow: error}}}
edges:
  - {from: src, to: burst}
  - {from: burst, to: out}
`), 0o644)
	r := run(t, dir, nil, "--graph", "g.yaml", "--report-json")
	rep := lastReport(t, r.stdout)
	if r.code != 1 || rep.Status != "error" || rep.Error == nil || rep.Error.Node != "burst" {
		t.Errorf("exit %d report %+v stderr %s", r.code, rep, r.stderr)
	}
}

func TestDropPolicyReportsDegraded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
  - {id: burst, plugin: "schnitzel_stream.nodes.dev:BurstNode", config: {count: 5}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink", config: {__runtime__: {inbox_max: 2, inbox_overflow: drop_oldest}}}
edges:
  - {from: src, to: burst}
  - {from: burst, to: out}
`), 0o644)
	r := run(t, dir, nil, "--graph", "g.yaml", "--report-json")
	rep := lastReport(t, r.stdout)
	if r.code != 0 || rep.Status != "degraded" || rep.Metrics["packets.dropped_total"] != 3 || rep.Metrics["node.out.inbox_dropped_total"] != 3 {
		t.Errorf("exit %d: %+v", r.code, rep)
	}
	if !strings.Contains(r.stdout, `"burst_seq": 3`) || !strings.Contains(r.stdout, `"burst_seq": 4`) {
		t.Errorf("drop_oldest must keep the newest packets:\n%s", r.stdout)
	}
}
