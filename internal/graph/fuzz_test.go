package graph

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// The fuzz targets run in CI for a bounded time each (scripts/test); their
// seed corpus is testdata/fuzz/<Target>/ plus the seeds added here.

func addFiles(f *testing.F, pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil && len(data) <= 64<<10 {
			f.Add(data)
		}
	}
}

// seedBombs adds small versions of the hostile files: the fuzzer mutates
// them at the edges of the limits.
func seedBombs(f *testing.F) {
	addFiles(f, "testdata/hostile/*.yaml")
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x]\n")
	for i := 1; i < 6; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1)
	}
	f.Add([]byte(b.String()))
	f.Add([]byte("m0: &m0 {a: 1, b: 2}\nm1: &m1 {<<: *m0, x: *m0, y: *m0}\nm2: &m2 {<<: [*m1, *m0], x: *m1, y: *m1}\n"))
	f.Add([]byte("c:\n  x0: ab\n  x1: ${c.x0}${c.x0}\n  x2: ${c.x1}${c.x1}\n  x3: ${c.x2}${c.x2}\n"))
	f.Add([]byte("c:\n  x0: [1]\n  x1: ['${c.x0}', '${c.x0}']\n  x2: ['${c.x1}', '${c.x1}']\n"))
	f.Add([]byte("x: " + strings.Repeat("[", 40) + strings.Repeat("]", 40)))
	f.Add([]byte("x: " + strings.Repeat("{a: ", 20) + "1" + strings.Repeat("}", 20)))
	f.Add([]byte("x:\n" + strings.Repeat("  - ", 30) + "1\n"))
	f.Add([]byte("x: |\n  a\n  b: [[[\n  c\ny: 'it''s'\nz: \"q\\\"\"\nw: plain\n  continued\n"))
	f.Add([]byte("\xef\xbb\xbfversion: 2\nnodes: []\n"))
}

// fuzzLimits are small so that the fuzzer reaches every limit quickly.
var fuzzLimits = Limits{MaxFileBytes: 64 << 10, MaxDepth: 16, MaxNodes: 2000, MaxScalarBytes: 4 << 10}

// valueStats walks a loaded value: values, depth, longest string.
func valueStats(v any) (nodes, depth, longest int) {
	switch x := v.(type) {
	case *packet.Map:
		nodes, depth = 1, 1
		for _, e := range x.Entries() {
			n, d, l := valueStats(e.Value)
			nodes += 1 + n
			depth = max(depth, 1+d)
			longest = max(longest, l, len(e.Key))
		}
	case []any:
		nodes, depth = 1, 1
		for _, e := range x {
			n, d, l := valueStats(e)
			nodes += n
			depth = max(depth, 1+d)
			longest = max(longest, l)
		}
	case string:
		return 1, 0, len(x)
	default:
		return 1, 0, 0
	}
	return nodes, depth, longest
}

// checkLoad asserts what every load must hold, whatever the input: no
// panic, every diagnostic names the file and every error a line inside
// it, an accepted document within the limits, and the cost bounded.
func checkLoad(t *testing.T, data []byte, lim Limits, maxAlloc uint64) *Graph {
	t.Helper()
	var before, after runtime.MemStats
	hang := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("loading took 20 s: %q", truncate(data))) })
	defer hang.Stop()
	runtime.ReadMemStats(&before)
	g, diags := LoadLimited("fuzz.yaml", data, env(map[string]string{"A": "1"}), lim)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxAlloc {
		t.Fatalf("loading %d bytes allocated %d MiB (bound %d MiB)\ninput: %q", len(data), alloc>>20, maxAlloc>>20, truncate(data))
	}
	// YAML breaks lines at LF, CRLF and a lone CR.
	lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
	for _, d := range diags {
		if d.File != "fuzz.yaml" {
			t.Fatalf("diag without file: %+v", d)
		}
		if d.Severity == SevError && (d.Line < 1 || d.Line > lines) {
			t.Fatalf("error without a line in the file (%d lines): %s\ninput: %q", lines, d, truncate(data))
		}
	}
	if g == nil || diags.HasErrors() {
		return nil
	}
	// The whole accepted document: interpolation may add at most MaxNodes
	// to what the file holds, and no value nests or grows past the limits.
	nodes, depth, longest := valueStats(g.Config)
	for _, n := range g.Nodes {
		c, d, l := valueStats(n.Config)
		nodes += c
		depth = max(depth, d+3)
		longest = max(longest, l)
	}
	if nodes > 2*lim.MaxNodes || depth > lim.MaxDepth || longest > lim.MaxScalarBytes {
		t.Fatalf("accepted a document past the limits: %d values, depth %d, a %d-byte string\ninput: %q", nodes, depth, longest, truncate(data))
	}
	return g
}

func truncate(b []byte) []byte {
	if len(b) > 2000 {
		return b[:2000]
	}
	return b
}

// FuzzLoadValidate: no input may panic the loader or validator, errors say
// where they are, and an accepted graph is within the default limits.
func FuzzLoadValidate(f *testing.F) {
	addFiles(f, "../../configs/graphs/*.yaml")
	f.Add([]byte("version: 2\nnodes: [{id: a, plugin: 'x:Y'}]\nedges: [{from: a, to: a}]"))
	f.Add([]byte("a: ${b}\nb: ${a}"))
	f.Add([]byte("x: &a [1, *a]\n"))
	f.Add([]byte("version: 2\nnodes:\n  - id: s\n    kind: source\n    plugin: schnitzel_stream.nodes.dev:StaticSource\n    config: {packets: [{kind: [1]}]}\n"))
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		g := checkLoad(t, data, DefaultLimits, 256<<20)
		if g == nil {
			return
		}
		_, vd := Validate(g, reg, plugin.Policy{AllowAll: true})
		for _, d := range vd {
			if d.Line == 0 {
				t.Fatalf("validation diag without a line: %s\ninput:\n%s", d, data)
			}
		}
	})
}

// FuzzHostile: mutations of the bombs, under small limits, never cost more
// than a bounded amount of memory and never slip a document past a limit.
func FuzzHostile(f *testing.F) {
	seedBombs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Under fuzzLimits a document holds a few thousand values at most;
		// 32 MiB is a hundred times what that costs.
		checkLoad(t, data, fuzzLimits, 32<<20)
	})
}

// FuzzPrescan: the raw-text prescan never counts more nesting or values
// than the parsed document has (else it would refuse a file that is within
// the limits), measured by measure() on what the YAML library parsed.
func FuzzPrescan(f *testing.F) {
	seedBombs(f)
	addFiles(f, "../../configs/graphs/*.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		loose := Limits{MaxFileBytes: 1 << 30, MaxDepth: 1 << 30, MaxNodes: 1 << 30, MaxScalarBytes: 1 << 30}
		if err := prescan(data, loose); err != nil {
			t.Fatalf("prescan refused under no limits: %v", err)
		}
		text, lerr := checkText(data)
		if lerr != nil {
			return
		}
		dec := yaml.NewDecoder(bytes.NewReader(text))
		var top, next yaml.Node
		if dec.Decode(&top) != nil || !errors.Is(dec.Decode(&next), io.EOF) {
			// Not YAML, or more than one document (where yaml.v3 stops
			// early, " a: 1\nb: 2" and "[]x" among them): what prescan
			// counts does not matter, the loader refuses the file.
			return
		}
		m := &measurer{lim: loose, anchors: map[*yaml.Node]extent{}, open: map[*yaml.Node]bool{}}
		e, err := m.node(&top, 0)
		if err != nil {
			return
		}
		exact := Limits{MaxFileBytes: 1 << 30, MaxDepth: max(e.depth, 1), MaxNodes: max(m.total, 1), MaxScalarBytes: 1 << 30}
		if err := prescan(text, exact); err != nil {
			t.Fatalf("prescan refused a document of depth %d and %d values: %v\ninput: %q", e.depth, m.total, err, truncate(text))
		}
	})
}
