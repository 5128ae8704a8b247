package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not on PATH")
	}
}

// Upstream-style Python classes (examples/plugins/upstream) run by the
// binary through the Python shim: the source, the transform, the node
// that raises on odd packets (dropped: degraded) and PrintSink.
func TestExecUpstreamClasses(t *testing.T) {
	needPython(t)
	env := []string{"ALLOWED_PLUGIN_PREFIXES=schnitzel_stream.,mynodes"}
	r := run(t, "", env, "--graph", "examples/plugins/upstream/graph.yaml", "--report-json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{`"text": "TICK 0"`, `"text": "TICK 2"`, `"meta": {"upper": true}`, `"status":"degraded"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %s:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "TICK 1") || !strings.Contains(r.stderr, "ValueError: odd n: 1") {
		t.Errorf("the odd packets should fail with the class's error:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

// A class that does not exist or a module that raises at import fails
// validation, naming the plugin and its line; a module outside the
// allowlist is never imported.
func TestExecValidateImportErrors(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("broken.py", "raise RuntimeError('boom at import')\n")
	write("graph.yaml", `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource, config: {packets: [{payload: 1}]}}
  - {id: b, kind: node, plugin: "broken:Thing"}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}
edges:
  - {src: src, dst: b}
  - {src: b, dst: out}
`)
	r := run(t, dir, []string{"ALLOWED_PLUGIN_PREFIXES=schnitzel_stream.,broken"}, "validate", "--graph", "graph.yaml")
	if r.code == 0 || !strings.Contains(r.stderr, `graph.yaml:4: node "b": plugin "broken:Thing": cannot load the Python class: RuntimeError: boom at import`) {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = run(t, dir, nil, "validate", "--graph", "graph.yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "not allowed") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// A plugin in another language: the Go example, built here, in a graph.
func TestExecGoPlugin(t *testing.T) {
	dir := t.TempDir()
	plug := filepath.Join(dir, "wordcount")
	build := exec.Command("go", "build", "-o", plug, "./examples/plugins/go")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	graph, err := os.ReadFile(filepath.Join(root, "examples/plugins/go/graph.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	g := strings.Replace(string(graph), "dir: examples/plugins/go", "dir: "+dir, 1)
	if err := os.WriteFile(filepath.Join(dir, "graph.yaml"), []byte(g), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, nil, "--graph", "graph.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	got := lines(r.stdout)
	if len(got) < 2 || !strings.Contains(got[0], `"words": 4`) || !strings.Contains(got[1], `"words": 1`) {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
}
