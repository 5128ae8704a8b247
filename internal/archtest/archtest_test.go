package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/schnitzel-stream/schnitzel/"

// rule: packages matching pkg may import, from this module, only what
// matches allow (a trailing "/" matches the subtree). stdOnly: no
// third-party module either. First match wins, so specific rules come
// first; a package that matches none fails the test (add it here and to
// docs/architecture.md).
type rule struct {
	pkg     string
	allow   []string
	stdOnly bool
}

var rules = []rule{
	// Public leaves: anyone may import them, they import (almost) nothing.
	{pkg: "packet", stdOnly: true},
	{pkg: "redact", stdOnly: true},
	{pkg: "plugin", allow: []string{"packet"}, stdOnly: true},
	{pkg: "plugin/plugintest", allow: []string{"engine", "packet", "plugin"}},
	// Core: knows nodes only through plugin.Registry.
	{pkg: "internal/graph", allow: []string{"packet", "plugin"}},
	{pkg: "internal/runtime", allow: []string{"internal/graph", "packet", "plugin"}},
	{pkg: "internal/report", allow: []string{"internal/runtime", "internal/graph", "packet", "plugin", "redact"}},
	{pkg: "internal/queue", allow: []string{"packet", "redact"}},
	{pkg: "internal/ops/", allow: []string{"internal/ops/", "internal/graph", "internal/queue", "internal/runtime", "packet", "plugin", "redact"}},
	// The control plane: runs graphs through the engine entry point.
	{pkg: "internal/serve", allow: []string{"engine", "internal/serve/audit", "internal/graph", "internal/runtime", "internal/report", "packet", "plugin", "redact"}},
	// The API opens the graphs' durable queue files for the console's
	// Queues page (stats, peek, requeue), as `schnitzel queue` does.
	{pkg: "internal/serve/", allow: []string{"engine", "internal/serve", "internal/serve/", "internal/graph", "internal/queue", "internal/report", "packet", "plugin", "redact"}},
	{pkg: "internal/poll", stdOnly: true},
	{pkg: "internal/logbuf", stdOnly: true},
	// Process graphs: several plans, validated and run by a caller's executor.
	// redact: a nats channel's url is shown with its credentials masked.
	{pkg: "internal/procgraph", allow: []string{"internal/graph", "packet", "plugin", "redact"}},
	// Graph unit tests: a graph with test doubles, run through the engine.
	{pkg: "internal/graphtest", allow: []string{"engine", "internal/graph", "packet", "plugin"}},
	{pkg: "internal/netaddr", stdOnly: true},
	// Child-process supervision shared by the exec nodes and the detector
	// adapters; redact masks secrets in the command lines it names.
	{pkg: "internal/childproc", allow: []string{"redact"}},
	{pkg: "internal/cli/", allow: []string{"engine", "internal/", "packet", "plugin", "redact"}},
	{pkg: "internal/archtest"},
	// The door: run a graph, run the command line; given a registry, never
	// importing nodes.
	{pkg: "engine", allow: []string{"internal/graph", "internal/runtime", "internal/report", "packet", "plugin", "redact"}},
	{pkg: "cli", allow: []string{"configs", "engine", "internal/", "packet", "plugin", "redact"}},
	{pkg: "configs", stdOnly: true},
	// Nodes: plugin API, plus the durable queue for nodes/durable.
	{pkg: "nodes/all", allow: []string{"nodes/", "packs/", "plugin"}},
	// Test helpers beside the nodes (a real broker for tests) may poll.
	{pkg: "nodes/mqtt/mqtttest", allow: []string{"internal/logbuf", "internal/poll", "packet", "plugin"}},
	{pkg: "nodes/", allow: []string{"internal/childproc", "internal/netaddr", "internal/queue", "packet", "plugin", "redact"}},
	// The decoding library registers nothing: only the sources do.
	{pkg: "packs/vision/ffmpeg", allow: []string{"packs/vision/frame", "redact"}},
	{pkg: "packs/vision/video", allow: []string{"packs/vision/ffmpeg", "packs/vision/frame", "packet", "plugin", "redact"}},
	{pkg: "packs/", allow: []string{"packs/", "nodes/dev", "nodes/io", "nodes/durable", "internal/childproc", "internal/queue", "packet", "plugin", "redact"}},
	// Binaries: the door and a registry.
	{pkg: "cmd/", allow: []string{"cli", "nodes/all"}},
	{pkg: "examples/", allow: []string{"cli", "engine", "examples/", "nodes/all", "packet", "plugin"}},
	// The MQTT benchmark drives the nodes themselves beside a plain client.
	{pkg: "bench/mqtt", allow: []string{"nodes/mqtt", "packet", "plugin", "redact"}},
	{pkg: "bench/", allow: []string{"packet", "redact"}},
	{pkg: "test"},
}

func match(pattern, path string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(path, pattern)
	}
	return path == pattern
}

func ruleFor(pkg string) (rule, bool) {
	for _, r := range rules {
		if match(r.pkg, pkg) {
			return r, true
		}
	}
	return rule{}, false
}

// standard reports whether an import path is the standard library's: its
// first element has no dot (the go command's own rule).
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// violations checks one package's non-test imports against the rules.
func violations(pkg string, imports []string) []string {
	r, ok := ruleFor(pkg)
	if !ok {
		return []string{fmt.Sprintf("%s: no dependency rule (add one in internal/archtest and docs/architecture.md)", pkg)}
	}
	var bad []string
	for _, imp := range imports {
		if standard(imp) {
			continue
		}
		rel, ours := strings.CutPrefix(imp, module)
		if !ours {
			if r.stdOnly {
				bad = append(bad, fmt.Sprintf("%s imports %s: only the standard library is allowed", pkg, imp))
			}
			continue
		}
		allowed := false
		for _, a := range r.allow {
			allowed = allowed || match(a, rel)
		}
		if !allowed {
			bad = append(bad, fmt.Sprintf("%s imports %s: allowed are %v", pkg, rel, r.allow))
		}
	}
	return bad
}

// testViolations: only the cli package's own tests drive internal/cli
// packages; every other test goes through cli, engine or plugintest.
func testViolations(pkg string, testImports []string) []string {
	if pkg == "cli" || strings.HasPrefix(pkg, "internal/cli/") {
		return nil
	}
	var bad []string
	for _, imp := range testImports {
		if rel, ok := strings.CutPrefix(imp, module); ok && strings.HasPrefix(rel+"/", "internal/cli/") {
			bad = append(bad, fmt.Sprintf("%s: a test imports %s (use cli, engine or plugintest)", pkg, rel))
		}
	}
	return bad
}

func TestDependencyRule(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "|")
		if len(parts) != 3 {
			t.Fatalf("go list line %q", sc.Text())
		}
		pkg, ok := strings.CutPrefix(parts[0], module)
		if !ok {
			t.Fatalf("package %s is outside the module", parts[0])
		}
		n++
		for _, v := range violations(pkg, strings.Fields(parts[1])) {
			t.Error(v)
		}
		for _, v := range testViolations(pkg, strings.Fields(parts[2])) {
			t.Error(v)
		}
	}
	if n < 20 {
		t.Fatalf("go list saw %d packages: run from the wrong directory?", n)
	}
}

// TestRulesCatch: the checker refuses what the rule forbids.
func TestRulesCatch(t *testing.T) {
	cases := []struct {
		pkg     string
		imports []string
		bad     bool
	}{
		{"internal/runtime", []string{module + "nodes/dev"}, true},
		{"internal/graph", []string{module + "cli"}, true},
		{"internal/queue", []string{module + "packs/vision/frame"}, true},
		{"packet", []string{"github.com/google/shlex"}, true},
		{"plugin", []string{module + "redact"}, true},
		{"redact", []string{module + "packet"}, true},
		{"nodes/dev", []string{module + "nodes/all"}, true},
		{"packs/vision/nodes", []string{module + "nodes/all"}, true},
		{"cli", []string{module + "nodes/dev"}, true},
		{"engine", []string{module + "cli"}, true},
		{"somewhere/new", nil, true},
		{"plugin", []string{"context", module + "packet"}, false},
		{"internal/runtime", []string{module + "internal/graph", "log/slog"}, false},
		{"cmd/schnitzel", []string{module + "cli", module + "nodes/all", "os"}, false},
	}
	for _, tc := range cases {
		if got := len(violations(tc.pkg, tc.imports)) > 0; got != tc.bad {
			t.Errorf("%s importing %v: violation %v, want %v", tc.pkg, tc.imports, got, tc.bad)
		}
	}
	if len(testViolations("packs/vision/nodes", []string{module + "internal/cli/exitcode"})) == 0 {
		t.Error("a pack test importing internal/cli/exitcode was let through")
	}
	if len(testViolations("cli", []string{module + "internal/cli/exitcode"})) != 0 {
		t.Error("cli's own tests may import internal/cli")
	}
}
