package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every range error of the durable and HTTP nodes comes out of one
// validate, each with its line: no fixing them one round at a time.
func TestValidateReportsEveryConfigErrorAtOnce(t *testing.T) {
	dir := t.TempDir()
	g := `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource
    config:
      path: q.sqlite3
      lease_sec: 1e10
      max_attempts: 0
      max_in_flight: -1
  - id: http
    kind: node
    plugin: schnitzel_stream.nodes.http:HttpJsonSink
    config:
      url: http://127.0.0.1:9/x
      forward: true
      max_in_flight: 0
      timeout_sec: 7200
      batch_format: csv
  - id: ack
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink
    config: {path: q.sqlite3, dedup_window_sec: .nan}
edges:
  - {from: src, to: http}
  - {from: http, to: ack}
`
	if err := os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(g), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, nil, "validate", "--graph", "g.yaml")
	if r.code != 2 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"g.yaml:8: node \"src\": config.lease_sec",
		"g.yaml:9: node \"src\": config.max_attempts",
		"g.yaml:10: node \"src\": config.max_in_flight",
		"g.yaml:17: node \"http\": config.max_in_flight",
		"g.yaml:18: node \"http\": config.timeout_sec",
		"node \"http\": config.batch_format",
		"node \"ack\": config.dedup_window_sec",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}
