package execnodes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// pyDir is a graph directory holding the upstream-style example classes
// and a module that raises at import; it is the working directory, so that
// RunGraph's graph.yaml lives there.
func pyDir(t *testing.T) string {
	t.Helper()
	pythonOrSkip(t)
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/plugins/upstream/mynodes.py")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"mynodes.py": string(src),
		"broken.py":  "raise RuntimeError('boom at import')\n",
		"noclass.py": "def process(p):\n    return [p]\nclass Plain:\n    pass\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	t.Setenv("ALLOWED_PLUGIN_PREFIXES", "schnitzel_stream.,mynodes,broken,noclass,nosuchmod")
	return dir
}

func graphWith(plugin string) string {
	return `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.nodes.dev:StaticSource, config: {packets: [{payload: {text: a}}]}}
  - {id: x, kind: node, plugin: "` + plugin + `"}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink}
edges:
  - {src: src, dst: x}
  - {src: x, dst: out}
`
}

// The validator resolves an allowed, unregistered module:Class through the
// shim's import check, and a class that cannot load fails validation with
// the reason, naming the plugin.
func TestPythonClassValidation(t *testing.T) {
	pyDir(t)
	reg := testRegistry()
	for _, tc := range []struct {
		plugin, want string
	}{
		{"mynodes:Nope", `plugin "mynodes:Nope": cannot load the Python class: ImportError: plugin target not found: mynodes:Nope`},
		{"broken:Thing", "RuntimeError: boom at import"},
		{"nosuchmod:Thing", "ModuleNotFoundError: No module named 'nosuchmod'"},
		{"noclass:process", "must resolve to a class"},
		{"noclass:Plain", "must implement process() or run()"},
		{"mynodes:Counter", "node plugin must implement process(): mynodes:Counter is a source plugin"},
		{"schnitzel_stream.nodes.dev:Typo", "is not registered in this build"},
		{"other:Thing", "not allowed"},
	} {
		t.Run(tc.plugin, func(t *testing.T) {
			_, err := plugintest.TryRunGraph(context.Background(), graphWith(tc.plugin), reg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("no python", func(t *testing.T) {
		t.Setenv(PythonEnv, filepath.Join(t.TempDir(), "no-python"))
		_, err := plugintest.TryRunGraph(context.Background(), graphWith("mynodes:Fresh"), reg)
		if err == nil || !strings.Contains(err.Error(), "cannot be loaded as a Python class") {
			t.Fatalf("err = %v", err)
		}
	})
}

// testRegistry has the exec nodes and the dev nodes the graphs use.
func testRegistry() *plugin.Registry {
	r := registry()
	dev.Register(r)
	return r
}

// Upstream's own classes run unchanged: a source, a transform, a node
// that raises (its packets dropped, the run degraded) and a sink.
func TestPythonClassesRunUnchanged(t *testing.T) {
	dir := pyDir(t)
	out := filepath.Join(dir, "collected.jsonl")
	r, err := plugintest.TryRunGraph(context.Background(), `version: 2
nodes:
  - {id: src, kind: source, plugin: mynodes:Counter, config: {count: 4}}
  - {id: up, kind: node, plugin: mynodes:Upper, config: {field: text}}
  - {id: odd, kind: node, plugin: mynodes:Fails}
  - {id: keep, kind: sink, plugin: mynodes:Collect, config: {path: `+out+`}}
edges:
  - {src: src, dst: up}
  - {src: up, dst: odd}
  - {src: odd, dst: keep}
`, testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if r.Report.Status != "degraded" {
		t.Errorf("status %q, want degraded (Fails dropped two packets)", r.Report.Status)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"n\": 0, \"text\": \"TICK 0\"}\n{\"n\": 2, \"text\": \"TICK 2\"}\n"
	if string(b) != want {
		t.Errorf("collected:\n%s\nwant:\n%s", b, want)
	}
}
