package procgraph_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/procgraph"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	durable.Register(r)
	return r
}

const (
	mod      = "schnitzel_stream.nodes.durable_sqlite:"
	producer = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {interval_sec: 0, count: %d}}
  - {id: q, kind: sink, plugin: "` + mod + `SqliteQueueSink", config: {path: %s}}
edges:
  - {from: src, to: q}
`
	consumer = `version: 2
nodes:
  - {id: src, kind: source, plugin: "` + mod + `SqliteQueueSource", config: {path: %s, drain: true}}
  - {id: ack, kind: sink, plugin: "` + mod + `SqliteQueueAckSink", config: {path: %s}}
edges:
  - {from: src, to: ack}
`
)

// inDir runs the test in a temp working directory: paths resolve there.
func inDir(t *testing.T) string {
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func loader(reg *plugin.Registry) procgraph.Loader {
	return func(path string) (*graph.Plan, graph.Diags, error) {
		return engine.LoadFile(path, engine.Options{Registry: reg, Getenv: func(string) string { return "" }})
	}
}

// wantErrors checks the validation errors: none when want is "", else
// one containing want.
func wantErrors(t *testing.T, diags graph.Diags, want string) {
	t.Helper()
	var all []string
	for _, d := range diags.Errors() {
		all = append(all, d.String())
	}
	got := strings.Join(all, "\n")
	if want == "" {
		if got != "" {
			t.Fatalf("want valid, got:\n%s", got)
		}
		return
	}
	if !strings.Contains(got, want) {
		t.Fatalf("want an error containing\n  %s\ngot:\n%s", want, got)
	}
}

func validate(t *testing.T, spec string) (*procgraph.Spec, *procgraph.Report, graph.Diags) {
	t.Helper()
	write(t, "pg.yaml", spec)
	s, diags := procgraph.LoadFile("pg.yaml", func(string) (string, bool) { return "", false })
	if s == nil {
		return nil, nil, diags
	}
	rep, vd := procgraph.Validate(s, loader(registry()))
	return s, rep, append(diags, vd...)
}

const pair = `version: 1
processes:
  - {id: p, graph: p.yaml}
  - {id: c, graph: c.yaml}
channels:
  - {id: q1, kind: sqlite_queue, path: q.sqlite3, require_ack: true}
links:
  - {producer: p, consumer: c, channel: q1}
`

func TestValidate(t *testing.T) {
	cases := []struct {
		name, spec string
		cons       string // consumer graph (default: reads q.sqlite3 with an ack sink)
		want       string // "" = valid
	}{
		{"ok", pair, "", ""},
		{"version", strings.Replace(pair, "version: 1", "version: 2", 1), "", "pg.yaml:1: version: version must be the integer 1"},
		{"unknown key", pair + "linx: []\n", "", `unknown top-level key "linx" (did you mean "links"?`},
		{"unknown producer", strings.Replace(pair, "producer: p", "producer: x", 1), "", `unknown producer process "x"`},
		{"self link", strings.Replace(pair, "consumer: c", "consumer: p", 1), "", "producer and consumer are the same process"},
		{"kind", strings.Replace(pair, "sqlite_queue", "kafka", 1), "", `kind "kafka" is not supported`},
		{"require_ack type", strings.Replace(pair, "require_ack: true", "require_ack: \"yes\"", 1), "", "require_ack must be true or false"},
		{"duplicate process", strings.Replace(pair, "id: c, graph", "id: p, graph", 1), "", `duplicate process id "p"`},
		{"wrong path", pair, fmt.Sprintf(consumer, "other.sqlite3", "other.sqlite3"), `consumer "c" has no SqliteQueueSource reading q.sqlite3`},
		{"no ack", pair, fmt.Sprintf(strings.Split(consumer, "  - {id: ack")[0]+"  - {id: ack, kind: sink, plugin: \"schnitzel_stream.nodes.dev:PrintSink\"}\nedges:\n  - {from: src, to: ack}\n", "q.sqlite3"), "requires acks"},
		{"missing graph", strings.Replace(pair, "graph: c.yaml", "graph: nope.yaml", 1), "", "nope.yaml"},
		{"cycle", `version: 1
processes:
  - {id: p, graph: p.yaml}
  - {id: c, graph: c.yaml}
channels:
  - {id: q1, kind: sqlite_queue, path: q.sqlite3}
  - {id: q2, kind: sqlite_queue, path: q2.sqlite3}
links:
  - {producer: p, consumer: c, channel: q1}
  - {producer: c, consumer: p, channel: q2}
`, "", "the processes form a cycle"},
		{"same file", `version: 1
processes:
  - {id: p, graph: p.yaml}
  - {id: c, graph: c.yaml}
  - {id: d, graph: c.yaml}
channels:
  - {id: q1, kind: sqlite_queue, path: q.sqlite3}
  - {id: q2, kind: sqlite_queue, path: ./q.sqlite3}
links:
  - {producer: p, consumer: c, channel: q1}
  - {producer: p, consumer: d, channel: q2}
`, "", `uses the same file as channel "q1"`},
		{"channel twice", strings.Replace(pair, "links:\n", "links:\n  - {producer: c, consumer: p, channel: q1}\n", 1), "", "is used by 2 links"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inDir(t)
			write(t, "p.yaml", fmt.Sprintf(producer, 3, "q.sqlite3"))
			cons := c.cons
			if cons == "" {
				cons = fmt.Sprintf(consumer, "q.sqlite3", "q.sqlite3")
			}
			write(t, "c.yaml", cons)
			_, _, diags := validate(t, c.spec)
			wantErrors(t, diags, c.want)
		})
	}
}

// Paths resolve against the working directory, not the spec's directory
// (D-PG-1): the report names the files the queue nodes will open.
func TestPathsResolveAgainstTheWorkingDirectory(t *testing.T) {
	dir := inDir(t)
	write(t, "p.yaml", fmt.Sprintf(producer, 3, "q.sqlite3"))
	write(t, "c.yaml", fmt.Sprintf(consumer, "q.sqlite3", "q.sqlite3"))
	_, rep, diags := validate(t, pair)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want, _ := filepath.EvalSymlinks(dir)
	got, _ := filepath.EvalSymlinks(filepath.Dir(rep.ChannelPaths["q1"]))
	if got != want || rep.ProcessCount != 2 || rep.LinkCount != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// Run delivers everything: the consumer, which drains and ends, is run
// again while the producer runs and once after it ended.
func TestRunDeliversEverything(t *testing.T) {
	inDir(t)
	const n = 2000
	write(t, "p.yaml", fmt.Sprintf(producer, n, "q.sqlite3"))
	write(t, "c.yaml", fmt.Sprintf(consumer, "q.sqlite3", "q.sqlite3"))
	s, rep, diags := validate(t, pair)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	consumed := 0
	exec := func(ctx context.Context, id string, plan *graph.Plan) (string, error) {
		r, err := engine.Execute(ctx, plan, id, engine.Options{})
		if err != nil {
			return "error", err
		}
		if id == "c" {
			v, _ := r.Metrics.Get("node.ack.acked_total")
			n, _ := v.(int64)
			consumed += int(n)
		}
		return string(r.Status), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := procgraph.Run(ctx, s, rep, exec, 10*time.Millisecond)
	for _, r := range res {
		if r.Status != "ok" {
			t.Fatalf("process %s: %+v", r.ID, r)
		}
	}
	if consumed != n {
		t.Fatalf("consumer acked %d packets, want %d (results %+v)", consumed, n, res)
	}
	q, err := queue.Open("q.sqlite3", queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if d := q.Depth(); d != 0 {
		t.Fatalf("%d rows left in the queue", d)
	}
}
