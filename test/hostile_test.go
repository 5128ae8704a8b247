//go:build linux

package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every hostile graph file gets a clear error with its line from
// `schnitzel validate`, exit 2, and a peak RSS under 64 MiB (the limits in
// docs/operations.md). Linux only: peak RSS is read from rusage, through
// GNU time (below).
func TestValidateHostileGraphFiles(t *testing.T) {
	dir := t.TempDir()
	gen := func(name, head string, filler byte, n int, tail string) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(head)
		chunk := bytes.Repeat([]byte{filler}, 1<<20)
		for left := n; left > 0; left -= len(chunk) {
			f.Write(chunk[:min(left, len(chunk))])
		}
		f.WriteString(tail)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostile := filepath.Join(root, "internal", "graph", "testdata", "hostile")
	cases := []struct {
		file string
		line int
		want string
	}{
		{filepath.Join(hostile, "billion_laughs.yaml"), 9, "aliases and merge keys expand to more than the limit of 100000 values; raise it with --max-graph-nodes or SCHNITZEL_MAX_GRAPH_NODES"},
		{filepath.Join(hostile, "merge_bomb.yaml"), 8, "aliases and merge keys expand to more than the limit"},
		{filepath.Join(hostile, "interp_string_bomb.yaml"), 23, "an interpolated string is longer than the limit of 1 MiB"},
		{filepath.Join(hostile, "interp_list_bomb.yaml"), 19, "interpolations resolve to more than the limit"},
		{filepath.Join(hostile, "deep_seq_20k.yaml"), 2, "nesting deeper than the limit of 64 levels; raise it with --max-graph-depth"},
		{filepath.Join(hostile, "deep_map_20k.yaml"), 2, "nesting deeper than the limit of 64 levels"},
		{filepath.Join(hostile, "invalid_utf8.yaml"), 3, "invalid UTF-8"},
		{filepath.Join(hostile, "top_list.yaml"), 1, "top-level must be a mapping, got a list"},
		{filepath.Join(hostile, "plugin_os_system.yaml"), 5, `plugin "os:system" is not allowed: module "os" is not under ALLOWED_PLUGIN_PREFIXES`},
		{gen("deep200k.yaml", "version: 2\nx: ", '[', 100_000, strings.Repeat("]", 100_000)), 2, "nesting deeper than"},
		{gen("scalar100m.yaml", "version: 2\nx: ", 'a', 100<<20, "\nnodes: []\n"), 2, "graph file is larger than the limit of 8 MiB; raise it with --max-graph-bytes or SCHNITZEL_MAX_GRAPH_BYTES"},
		{gen("scalar2m.yaml", "version: 2\nx: ", 'a', 2<<20, "\nnodes: []\n"), 2, "a scalar is longer than the limit of 1 MiB; raise it with --max-graph-scalar-bytes"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// The child is started through GNU time, which forks: a child
			// the test binary starts itself is a vfork that shares its
			// memory until exec, and Linux carries that high-water mark
			// into the child's ru_maxrss, so the figure would be the test
			// binary's (75 MiB in a full -race run), not validate's.
			timeBin, err := exec.LookPath("/usr/bin/time")
			if err != nil {
				t.Skip("GNU time (/usr/bin/time, Debian package time) is needed to measure the child's peak RSS")
			}
			rss := filepath.Join(t.TempDir(), "rss")
			cmd := exec.CommandContext(ctx, timeBin, "-q", "-f", "%M", "-o", rss, bin, "validate", "--graph", c.file)
			cmd.Env = append(os.Environ(), "GOGC=", "GOMEMLIMIT=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("want exit 2, got %v\n%s", err, stderr.String())
			}
			prefix := c.file + ":" + strconv.Itoa(c.line) + ": "
			if !strings.Contains(stderr.String(), prefix) {
				t.Errorf("stderr lacks %q:\n%s", prefix, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, stderr.String())
			}
			if strings.Contains(stderr.String(), "goroutine ") {
				t.Errorf("crashed:\n%s", stderr.String())
			}
			// %M is the peak RSS in KiB.
			raw, err := os.ReadFile(rss)
			if err != nil {
				t.Fatal(err)
			}
			kib, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
			if err != nil {
				t.Fatalf("GNU time wrote %q: %v", raw, err)
			}
			if kib > 64<<10 {
				t.Errorf("peak RSS %d MiB, want under 64 MiB", kib>>10)
			}
		})
	}
}

// The knob each limit error names raises it: flag, or environment.
func TestValidateLimitKnobs(t *testing.T) {
	// A valid graph but for its nesting: 1,000 levels in an x- key (ignored
	// by validation), so raising the depth limit makes it pass.
	deep := filepath.Join(t.TempDir(), "deep.yaml")
	graph := "version: 2\nx-deep: " + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{kind: demo, payload: {}}]}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink"}
edges:
  - {from: src, to: out}
`
	if err := os.WriteFile(deep, []byte(graph), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", nil, "validate", "--graph", deep); r.code != 2 {
		t.Fatalf("default limits: exit %d", r.code)
	}
	if r := run(t, "", nil, "validate", "--max-graph-depth", "20000", "--graph", deep); r.code != 0 {
		t.Errorf("--max-graph-depth 20000: exit %d: %s", r.code, r.stderr)
	}
	if r := run(t, "", []string{"SCHNITZEL_MAX_GRAPH_DEPTH=20000"}, "validate", "--graph", deep); r.code != 0 {
		t.Errorf("SCHNITZEL_MAX_GRAPH_DEPTH=20000: exit %d: %s", r.code, r.stderr)
	}
	// 0 is refused, not taken silently as "the default".
	if r := run(t, "", nil, "validate", "--max-graph-depth", "0", "--graph", deep); r.code != 2 || !strings.Contains(r.stderr, "--max-graph-depth must be a positive number, got 0") {
		t.Errorf("--max-graph-depth 0: exit %d: %s", r.code, r.stderr)
	}
	// The flag beats the environment.
	if r := run(t, "", []string{"SCHNITZEL_MAX_GRAPH_DEPTH=20000"}, "validate", "--max-graph-depth", "64", "--graph", deep); r.code != 2 {
		t.Errorf("flag over env: exit %d", r.code)
	}
	r := run(t, "", []string{"SCHNITZEL_MAX_GRAPH_BYTES=lots"}, "validate", "--graph", "configs/graphs/dev_inproc_demo_v2.yaml")
	if r.code != 2 || !strings.Contains(r.stderr, `SCHNITZEL_MAX_GRAPH_BYTES must be a positive integer, got "lots"`) {
		t.Errorf("bad env value: exit %d: %s", r.code, r.stderr)
	}
	r = run(t, "", nil, "--max-graph-bytes", "100", "--graph", "configs/graphs/dev_inproc_demo_v2.yaml")
	if r.code != 2 || !strings.Contains(r.stderr, "graph file is larger than the limit of 100 bytes; raise it with --max-graph-bytes") {
		t.Errorf("run with a small --max-graph-bytes: exit %d: %s", r.code, r.stderr)
	}
}
