package runtime

import (
	"sync"
	"testing"
)

// envSeen records Env.CommitDownstream per node id, set by the EnvSpy node.
var envSeen sync.Map

// A node learns whether a committing sink is reachable downstream of it:
// directly, through other nodes, or not at all (another branch commits).
func TestCommitDownstream(t *testing.T) {
	x, err := New(plan(t, `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
  - {id: a, kind: node, plugin: "schnitzel_stream.test:EnvSpy"}
  - {id: b, kind: node, plugin: "schnitzel_stream.test:EnvSpy"}
  - {id: c, kind: node, plugin: "schnitzel_stream.test:EnvSpy"}
  - {id: lone, kind: node, plugin: "schnitzel_stream.test:EnvSpy"}
  - {id: q, kind: sink, plugin: "schnitzel_stream.test:Committer"}
  - {id: other, kind: sink, plugin: "schnitzel_stream.test:Lossy"}
edges:
  - {from: src, to: a}
  - {from: src, to: lone}
  - {from: a, to: b}
  - {from: b, to: q}
  - {from: a, to: c}
  - {from: c, to: other}
  - {from: lone, to: other}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Abort() })
	for id, want := range map[string]bool{"a": true, "b": true, "c": false, "lone": false} {
		got, ok := envSeen.Load(id)
		if !ok {
			t.Fatalf("node %s was not built", id)
		}
		if got != want {
			t.Errorf("node %s: CommitDownstream %v, want %v", id, got, want)
		}
	}
}
