package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"
)

// compileSchema compiles what `schnitzel graph schema` prints with an
// independent validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	r := runCLI(t, nil, "", "graph", "schema")
	if r.code != 0 {
		t.Fatalf("graph schema: exit %d: %s", r.code, r.stderr)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return s
}

// yamlInstance turns graph YAML into the JSON value a validator checks.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// Every graph the project ships validates against the schema.
func TestSchemaAcceptsEveryShippedGraph(t *testing.T) {
	s := compileSchema(t)
	var files []string
	for _, glob := range []string{"../configs/graphs/*.yaml", "../configs/bench/*.yaml", "../examples/*/*.yaml"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d graphs: %v", len(files), files)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(yamlInstance(t, src)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The schema catches what an editor should underline.
func TestSchemaRejectsMistakes(t *testing.T) {
	s := compileSchema(t)
	const src = `  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
`
	cases := []struct {
		name, graph string
		ok          bool
		want        string
	}{
		{"minimal", "version: 2\nnodes:\n" + src, true, ""},
		{"interpolated int", "version: 2\nnodes:\n  - {id: t, kind: source, plugin: \"schnitzel_stream.nodes.dev:TickerSource\", config: {count: \"${oc.env:N,5}\"}}\n", true, ""},
		{"top-level typo", "version: 2\nnodez:\n" + src, false, "nodez"},
		{"node key typo", "version: 2\nnodes:\n  - {id: a, kind: source, plugn: x, plugin: \"schnitzel_stream.nodes.dev:StaticSource\"}\n", false, "plugn"},
		{"config key typo", "version: 2\nnodes:\n  - {id: p, kind: sink, plugin: \"schnitzel_stream.nodes.dev:PrintSink\", config: {prefx: a}}\n", false, "prefx"},
		{"wrong type", "version: 2\nnodes:\n  - {id: t, kind: source, plugin: \"schnitzel_stream.nodes.dev:TickerSource\", config: {count: [1]}}\n", false, "count"},
		{"bad kind", "version: 2\nnodes:\n  - {id: a, kind: sauce, plugin: \"schnitzel_stream.nodes.dev:StaticSource\"}\n", false, "kind"},
		{"bad runtime key", "version: 2\nnodes:\n  - {id: a, kind: source, plugin: \"schnitzel_stream.nodes.dev:StaticSource\", config: {__runtime__: {inbox: 3}}}\n", false, "inbox"},
		{"v1 job", "version: 1\njob: schnitzel_stream.jobs.legacy_ai_pipeline:LegacyAIPipelineJob\n", true, ""},
		{"v1 without job", "version: 1\nconfig: {}\n", false, "job"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Validate(yamlInstance(t, []byte(c.graph)))
			if c.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error does not name %q: %v", c.want, err)
			}
		})
	}
}

// `schnitzel test` passes the shipped tests and fails a wrong one with exit 1.
func TestTestCommand(t *testing.T) {
	r := runCLI(t, nil, "", "test", "../configs/tests")
	if r.code != 0 || !strings.Contains(r.stdout, " 0 failed") || !strings.Contains(r.stdout, "PASS ") {
		t.Fatalf("shipped tests: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	dir := t.TempDir()
	bad := "graph: " + filepath.Join(mustAbs(t, "../configs/graphs"), "dev_inproc_demo_v2.yaml") + `
tests:
  - name: wrong message
    expect:
      out:
        packets: [{payload: {message: goodbye}}]
`
	if err := os.WriteFile(filepath.Join(dir, "demo_test.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, "", "test", dir)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL ") || !strings.Contains(r.stdout, `payload.message: got "hello", want "goodbye"`) {
		t.Fatalf("failing test: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "test", "--json", dir)
	var res struct {
		Failed  int `json:"failed"`
		Results []struct {
			Pass     bool     `json:"pass"`
			Failures []string `json:"failures"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 || res.Failed != 1 || len(res.Results) != 1 || res.Results[0].Pass {
		t.Fatalf("--json: exit %d err %v\n%s", r.code, err, r.stdout)
	}
	if r := runCLI(t, nil, "", "test", t.TempDir()); r.code != 2 || !strings.Contains(r.stderr, "no test files") {
		t.Fatalf("empty dir: exit %d %s", r.code, r.stderr)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
