package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const tickerSrc = `  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:TickerSource, config: {count: 2, interval_sec: 0}}
`

// TestNewcomerMistakes replays the mistakes of issue 12: each must exit
// non-zero with a message that says what is wrong and what was meant.
func TestNewcomerMistakes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "version: 2\nnodes:\n"+tickerSrc+"  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}\nedges:\n  - {from: src, to: out}\n")
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string // substrings of stdout+stderr
	}{
		{"nodez typo", "", []string{"validate", write("nodez.yaml", "version: 2\nnodez:\n"+tickerSrc)}, 2,
			[]string{`nodez.yaml:2: nodez: unknown top-level key "nodez" (did you mean "nodes"?)`, "the graph has no nodes"}},
		{"empty nodes", "", []string{"validate", write("empty.yaml", "version: 2\nnodes: []\n")}, 2,
			[]string{"empty.yaml:2: nodes: the graph has no nodes"}},
		{"empty nodes run", "", []string{"--graph", filepath.Join(dir, "empty.yaml")}, 2, []string{"the graph has no nodes"}},
		{"no source", "", []string{"validate", write("nosrc.yaml", "version: 2\nnodes:\n  - {id: a, kind: initial, plugin: schnitzel_stream.nodes.dev:Identity}\n  - {id: b, plugin: schnitzel_stream.nodes.dev:Identity}\nedges:\n  - {from: a, to: b}\n  - {from: b, to: a}\n")}, 2,
			[]string{"the graph has no source"}},
		{"node key typo", "", []string{"validate", write("confg.yaml", "version: 2\nnodes:\n  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:TickerSource, confg: {count: 1}}\n  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}\nedges:\n  - {from: src, to: out}\n")}, 2,
			[]string{`unknown node key "confg" (did you mean "config"?)`}},
		{"edge key typo", "", []string{"validate", write("edge.yaml", "version: 2\nnodes:\n"+tickerSrc+"  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}\nedges:\n  - {from: src, to: out, form_port: x}\n")}, 2,
			[]string{`unknown edge key "form_port" (did you mean "from_port"?)`}},
		{"config key typo cout", "", []string{"validate", write("cout.yaml", "version: 2\nnodes:\n  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:TickerSource, config: {cout: 3}}\n  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}\nedges:\n  - {from: src, to: out}\n")}, 2,
			[]string{`cout.yaml:3: node "src": config.cout: unknown key "cout" (did you mean "count"?)`}},
		{"one pass: type, range and enum", "", []string{"validate", write("phases.yaml", `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:TickerSource, config: {count: -1, interval_sec: x}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.file_sink:JsonlSink, config: {path: /tmp/x.jsonl, fsync: sometimes, max_files: nope}}
edges:
  - {from: src, to: out}
`)}, 2, []string{"config.interval_sec: expected a number", "config.count: must be >= 0", "config.fsync: must be one of", "config.max_files: expected an integer"}},
		{"yolo without adapter, every error at once", "", []string{"validate", write("yolo.yaml", `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource, config: {path: /tmp/x.mp4, fps: -1, max_frames: -1}}
  - {id: yolo, plugin: schnitzel_stream.packs.vision.nodes:YoloV8DetectorNode, config: {classes: "0,x", timeout_sec: 0}}
  - {id: out, kind: sink, plugin: schnitzel_stream.packs.vision.nodes:OpenCvBboxDisplaySink}
edges:
  - {from: src, to: yolo}
  - {from: yolo, to: out}
`)}, 2, []string{"config.command: YOLO inference needs a model adapter", `config.classes: must be class ids like "0,2"`, "config.timeout_sec: must be > 0", "config.fps: must be >= 0", "config.max_frames: must be >= 0"}},
		{"http sink not forwarding before ack", "", []string{"validate", "--strict", write("fwd.yaml", `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource, config: {path: /tmp/q.sqlite3}}
  - {id: http, kind: node, plugin: schnitzel_stream.nodes.http:HttpJsonSink, config: {url: "http://127.0.0.1:9/x"}}
  - {id: ack, kind: sink, plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink, config: {path: /tmp/q.sqlite3}}
edges:
  - {from: src, to: http}
  - {from: http, to: ack}
`)}, 2, []string{`node "http": HttpJsonSink does not forward (forward: false), so "ack" never receives a packet`, "set forward: true"}},
		{"undeclared port warns, strict fails", "", []string{"validate", "--strict", write("port.yaml", "version: 2\nnodes:\n"+tickerSrc+"  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}\nedges:\n  - {from: src, to: out, from_port: alerts}\n")}, 2,
			[]string{`warning: edge src.alerts -> out: from_port "alerts": TickerSource declares no output ports`}},
		{"validate without a graph", "", []string{"validate"}, 2, []string{"no graph given", "--default"}},
		{"validate --default", "", []string{"validate", "--default"}, 0, []string{"embedded:configs/graphs/", ": ok"}},
		{"valdate", "", []string{"valdate", "--graph", good}, 2, []string{`unknown command "valdate"`, "Did you mean this?\n\tvalidate"}},
		{"queue stat", "", []string{"queue", "stat", "--path", "q.sqlite3"}, 2, []string{`unknown command "stat" for "schnitzel queue"`, "stats"}},
		{"graph svg", "", []string{"graph", "svg", good}, 2, []string{`unknown command "svg" for "schnitzel graph"`}},
		{"graph dot positional", "", []string{"graph", "dot", good}, 0, []string{`"src" [label="src\nTickerSource"`}},
		{"graph dot --graph", "", []string{"graph", "dot", "--graph", good}, 0, []string{`"src" -> "out";`}},
		{"run from stdin names <stdin> in the report", "version: 2\nnodes:\n  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:TickerSource, config: {count: 1, interval_sec: 0}}\n  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}\nedges:\n  - {from: src, to: out}\n", []string{"--graph", "-", "--report-json"}, 0, []string{`"graph":"<stdin>"`}},
		{"graph mermaid from stdin", "version: 2\nnodes:\n" + tickerSrc, []string{"graph", "mermaid", "--graph", "-"}, 0, []string{"src(["}},
		{"graph dot without graph", "", []string{"graph", "dot"}, 2, []string{"no graph given"}},
		{"validate stdin", "version: 2\nnodes:\n  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:TickerSource, config: {cout: 3}}\n", []string{"validate", "--graph", "-"}, 2,
			[]string{`<stdin>:3: node "src": config.cout: unknown key "cout" (did you mean "count"?)`}},
		{"validate DIR recurses", "", []string{"validate", "../configs/graphs"}, 0, []string{"dev_inproc_demo_v2.yaml: ok", "legacy_pipeline.yaml: ok"}},
		{"validate DIR skips files that are not graphs", "", []string{"validate", "../configs"}, 0, []string{"configs/default.yaml: skipped (not a graph file", "configs/bench/chain_print_v2.yaml: ok"}},
		{"validate DIR checks a graph with a typo", "", []string{"validate", mkdir(t, map[string]string{"a.yaml": "version: 2\nnodez:\n" + tickerSrc, "zones.yaml": "zones: []\n"})}, 2,
			[]string{`unknown top-level key "nodez" (did you mean "nodes"?)`, "zones.yaml: skipped"}},
		{"nodez without version", "", []string{"validate", write("nover.yaml", "nodez:\n"+tickerSrc)}, 2,
			[]string{`unknown v1 top-level key "nodez" (did you mean "nodes"?)`}},
		{"plugins by class name", "", []string{"plugins", "TickerSource"}, 0, []string{"schnitzel_stream.nodes.dev:TickerSource  [source"}},
		{"plugins by class name, any case", "", []string{"plugins", "tickersource"}, 0, []string{"schnitzel_stream.nodes.dev:TickerSource"}},
		{"plugins by substring", "", []string{"plugins", "Sqlite"}, 0, []string{"SqliteQueueSource", "SqliteQueueSink", "SqliteQueueAckSink"}},
		{"plugins unknown", "", []string{"plugins", "PrintSnk"}, 2, []string{`no plugin matches "PrintSnk"`, "did you mean PrintSink?"}},
		{"paths unknown os", "", []string{"paths", "--os", "freebsd"}, 2, []string{`--os "freebsd": unknown system`}},
		{"log-format json diagnostics", "version: 2\nnodez: []\n", []string{"validate", "--graph", "-", "--log-format", "json"}, 2,
			[]string{`"msg":"graph diagnostic"`, `"message":"unknown top-level key \"nodez\" (did you mean \"nodes\"?)"`, `"level":"ERROR","msg":"1 of 1 graph(s) invalid"`}},
		{"completion bash", "", []string{"completion", "bash"}, 0, []string{"bash completion"}},
		{"completion of plugin names", "", []string{"__complete", "plugins", "Tick"}, 0, []string{"TickerSource\t"}},
		{"completion of flag values", "", []string{"__complete", "validate", "--log-format", ""}, 0, []string{"text\njson\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.stdin, tc.args...)
			all := r.stdout + r.stderr
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

// TestGraphDotRendersInGraphviz checks that node labels are two lines in
// Graphviz's output, not a literal backslash-n (needs graphviz's dot).
func TestGraphDotRendersInGraphviz(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("graphviz not installed")
	}
	r := runCLI(t, nil, "", "graph", "dot", "--graph", "../configs/graphs/dev_durable_drain_ack_v2.yaml")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(r.stdout)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("dot: %v\n%s", err, r.stdout)
	}
	svg := out.String()
	if strings.Contains(svg, `\n`) {
		t.Errorf("svg shows a literal \\n:\n%s", svg)
	}
	for _, want := range []string{">src</text>", ">SqliteQueueSource</text>", ">ack</text>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %s", want)
		}
	}
}

// mkdir writes files into a new directory and returns it.
func mkdir(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
