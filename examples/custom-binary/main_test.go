package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCustomBinary builds the example as a user would and runs a graph
// that mixes built-in nodes with the custom one.
func TestCustomBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the example: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "custom")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(env []string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}

	out, errs, code := run(nil, "--graph", "graph.yaml")
	if code != 0 || !strings.Contains(out, `"message": "HELLO"`) || !strings.Contains(out, `"message": "WORLD"`) {
		t.Fatalf("run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	out, _, code = run(nil, "plugins")
	if code != 0 || !strings.Contains(out, "example.nodes:Uppercase") || !strings.Contains(out, "schnitzel_stream.nodes.dev:PrintSink") {
		t.Fatalf("plugins: exit %d, the custom and the built-in nodes should be listed:\n%s", code, out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	g, err := os.ReadFile("graph.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(g, []byte("field: message"), []byte(`field: ""`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code = run(nil, "validate", "--graph", bad)
	if code != 2 || !strings.Contains(errs, "field must not be empty") {
		t.Fatalf("validate bad config: exit %d, want 2 naming the field\n%s", code, errs)
	}

	// ALLOWED_PLUGIN_PREFIXES, when set, replaces the binary's defaults.
	_, errs, code = run([]string{"ALLOWED_PLUGIN_PREFIXES=schnitzel_stream."}, "validate", "--graph", "graph.yaml")
	if code != 2 || !strings.Contains(errs, "not allowed") {
		t.Fatalf("validate under a narrower allowlist: exit %d, want 2\n%s", code, errs)
	}
}
