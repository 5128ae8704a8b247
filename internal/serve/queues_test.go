package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/durable"
)

func TestQueuesFromThePlans(t *testing.T) {
	e := newEnv(t)
	s, err := New(e.config(func(c *Config) { durable.Register(c.Engine.Registry) }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := t.TempDir()
	abs := filepath.Join(dir, "a.sqlite3")
	sink := func(path string) []byte {
		return []byte(strings.Replace(ticker, `plugin: "schnitzel_stream.nodes.dev:Identity"}`,
			`plugin: "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink", config: {path: "`+filepath.ToSlash(path)+`"}}`, 1))
	}
	// ${oc.env:...} is resolved (the file the node really opens), and a
	// relative path resolves against the working directory.
	if _, err := s.Apply("writer", sink("${oc.env:SS_QDIR}/b.sqlite3"), ApplyOptions{Env: map[string]string{"SS_QDIR": dir}, Stopped: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("rel", sink("queues/r.sqlite3"), ApplyOptions{Stopped: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("abs", sink(abs), ApplyOptions{Stopped: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("plain", []byte(ticker), ApplyOptions{Stopped: true}); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	got := s.Queues()
	want := []QueueRef{
		{Path: abs, Graph: "abs", Node: "out"},
		{Path: filepath.Join(dir, "b.sqlite3"), Graph: "writer", Node: "out"},
		{Path: filepath.Join(wd, "queues", "r.sqlite3"), Graph: "rel", Node: "out"},
	}
	if len(got) != len(want) {
		t.Fatalf("Queues %+v", got)
	}
	// Sorted by path.
	for i := range want {
		w := want[i]
		found := false
		for _, g := range got {
			if g.Path == w.Path && g.Graph == w.Graph && g.Node == w.Node && g.Plugin == "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink" {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %+v in %+v", w, got)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Path > got[i].Path {
			t.Errorf("not sorted: %+v", got)
		}
	}
	if err := s.Delete("abs", "t"); err != nil {
		t.Fatal(err)
	}
	for _, q := range s.Queues() {
		if q.Graph == "abs" {
			t.Errorf("deleted graph still listed: %+v", q)
		}
	}
}
