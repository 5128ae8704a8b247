package graph

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

var (
	raiseNodes  = []string{"limit of 100000 values", "--max-graph-nodes", "SCHNITZEL_MAX_GRAPH_NODES"}
	raiseDepth  = []string{"limit of 64 levels", "--max-graph-depth", "SCHNITZEL_MAX_GRAPH_DEPTH"}
	raiseScalar = []string{"limit of 1 MiB", "--max-graph-scalar-bytes", "SCHNITZEL_MAX_GRAPH_SCALAR_BYTES"}
	raiseBytes  = []string{"limit of 8 MiB", "--max-graph-bytes", "SCHNITZEL_MAX_GRAPH_BYTES"}
)

// firstError loads path and returns its first error, failing when there is
// none or when it does not name the file.
func firstError(t *testing.T, path string, lim Limits) Diag {
	t.Helper()
	g, diags := LoadFileLimited(path, env(nil), lim)
	errs := diags.Errors()
	if len(errs) == 0 {
		if g != nil {
			_, vd := Validate(g, testRegistry(), plugin.PolicyFromEnv(func(string) string { return "" }))
			errs = vd.Errors()
		}
		if len(errs) == 0 {
			t.Fatalf("%s: loaded without error", path)
		}
	}
	if errs[0].File != path {
		t.Errorf("error names file %q, want %q", errs[0].File, path)
	}
	return errs[0]
}

func wantDiag(t *testing.T, d Diag, line int, want []string) {
	t.Helper()
	if d.Line != line {
		t.Errorf("line %d, want %d: %s", d.Line, line, d)
	}
	for _, w := range want {
		if !strings.Contains(d.String(), w) {
			t.Errorf("error lacks %q: %s", w, d)
		}
	}
}

func TestHostileFilesAreRefusedWithTheirLine(t *testing.T) {
	cases := []struct {
		file string
		line int
		want []string
	}{
		{"billion_laughs.yaml", 9, append([]string{"aliases and merge keys expand to more than"}, raiseNodes...)},
		{"merge_bomb.yaml", 8, append([]string{"aliases and merge keys expand to more than"}, raiseNodes...)},
		{"interp_string_bomb.yaml", 23, append([]string{"config.x19: an interpolated string is longer than"}, raiseScalar...)},
		{"interp_list_bomb.yaml", 19, append([]string{"interpolations resolve to more than"}, raiseNodes...)},
		{"interp_chain.yaml", 4, append([]string{"interpolations refer through more than"}, raiseDepth...)},
		{"deep_seq_20k.yaml", 2, append([]string{"nesting deeper than"}, raiseDepth...)},
		{"deep_map_20k.yaml", 2, append([]string{"nesting deeper than"}, raiseDepth...)},
		{"deep_block.yaml", 66, append([]string{"nesting deeper than"}, raiseDepth...)},
		{"deep_compact_seq.yaml", 3, append([]string{"nesting deeper than"}, raiseDepth...)},
		{"self_alias.yaml", 2, []string{"alias *a refers to the value that holds it"}},
		{"invalid_utf8.yaml", 3, []string{"invalid UTF-8 (byte 0xe9)"}},
		{"control_char.yaml", 3, []string{"control character U+0001"}},
		{"top_list.yaml", 1, []string{"top-level must be a mapping, got a list"}},
		{"top_scalar.yaml", 3, []string{"top-level must be a mapping, got the string"}},
		{"top_empty.yaml", 1, []string{"top-level must be a mapping, got an empty document"}},
		{"interp_self_map.yaml", 4, []string{`config.a.r: interpolation cycle through "config.a.r"`}},
		{"plugin_null.yaml", 6, []string{`node "out": node requires non-empty plugin`}},
		{"id_null.yaml", 6, []string{`nodes[1]: node requires non-empty id`}},
		{"plugin_os_system.yaml", 5, []string{`node "evil": plugin "os:system" is not allowed: module "os" is not under ALLOWED_PLUGIN_PREFIXES (schnitzel_stream.,ai.)`}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			d := firstError(t, filepath.Join("testdata", "hostile", c.file), Limits{})
			wantDiag(t, d, c.line, c.want)
		})
	}
}

func TestBOMIsStripped(t *testing.T) {
	g, diags := LoadFile(filepath.Join("testdata", "hostile", "bom.yaml"), env(nil))
	if g == nil || len(diags) > 0 || g.Version != 2 {
		t.Fatalf("version not recognised after a BOM: %v %v", g, diags)
	}
}

// writeFile writes size bytes made of head, filler and tail without holding
// them in memory.
func writeFile(t *testing.T, name, head string, filler byte, size int64, tail string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(head)
	chunk := bytes.Repeat([]byte{filler}, 1<<20)
	for left := size; left > 0; left -= int64(len(chunk)) {
		if left < int64(len(chunk)) {
			chunk = chunk[:left]
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	f.WriteString(tail)
	return p
}

func TestGeneratedHostileFiles(t *testing.T) {
	mib := int64(1 << 20)
	list := "version: 2\nx: [" + strings.Repeat("1,", 150_000) + "1]\nnodes: []\n"
	var keys strings.Builder
	keys.WriteString("version: 2\nx:\n")
	for i := range 60_000 {
		fmt.Fprintf(&keys, "  k%d: v\n", i)
	}
	cases := []struct {
		name string
		file func(t *testing.T) string
		line int
		want []string
	}{
		{"100 MB scalar", func(t *testing.T) string {
			return writeFile(t, "scalar.yaml", "version: 2\nx: ", 'a', 100*mib, "\nnodes: []\n")
		}, 2, raiseBytes},
		{"file over 8 MiB", func(t *testing.T) string {
			return writeFile(t, "big.yaml", "version: 2\nnodes: []\n# ", 'x', 9*mib, "\n")
		}, 3, raiseBytes},
		{"2 MiB plain scalar", func(t *testing.T) string {
			return writeFile(t, "plain.yaml", "version: 2\nx: ", 'a', 2*mib, "\nnodes: []\n")
		}, 2, raiseScalar},
		{"2 MiB quoted scalar", func(t *testing.T) string {
			return writeFile(t, "quoted.yaml", "version: 2\nnodes: []\nx: \"", 'a', 2*mib, "\"\n")
		}, 3, raiseScalar},
		{"2 MiB block scalar", func(t *testing.T) string {
			return writeFile(t, "block.yaml", "version: 2\nx: |\n", ' ', 0, strings.Repeat("  "+strings.Repeat("b", 1000)+"\n", 2100)+"nodes: []\n")
		}, 2, raiseScalar},
		{"2 MiB multi-line plain scalar", func(t *testing.T) string {
			return writeFile(t, "multi.yaml", "version: 2\nx: start\n", ' ', 0, strings.Repeat("  "+strings.Repeat("c", 1000)+"\n", 2100)+"nodes: []\n")
		}, 2, raiseScalar},
		{"200 KB of [", func(t *testing.T) string {
			return writeFile(t, "deep.yaml", "version: 2\nx: ", '[', 100_000, strings.Repeat("]", 100_000)+"\n")
		}, 2, raiseDepth},
		{"200 KB of {a: ", func(t *testing.T) string {
			return writeFile(t, "deepmap.yaml", "version: 2\nx: "+strings.Repeat("{a: ", 40_000), ' ', 0, "1"+strings.Repeat("}", 40_000)+"\n")
		}, 2, raiseDepth},
		{"150,000 values", func(t *testing.T) string {
			return writeFile(t, "list.yaml", list, ' ', 0, "")
		}, 2, raiseNodes},
		{"60,000 keys", func(t *testing.T) string {
			return writeFile(t, "keys.yaml", keys.String(), ' ', 0, "")
		}, 50_000, raiseNodes},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.file(t)
			wantDiag(t, firstError(t, p, Limits{}), c.line, c.want)
		})
	}
}

func TestDevZeroReadsNoMoreThanTheLimit(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, diags := LoadFileLimited("/dev/zero", env(nil), Limits{MaxFileBytes: 1 << 16})
	if len(diags) != 1 || !strings.Contains(diags[0].Msg, "larger than the limit of 64 KiB") {
		t.Fatalf("got %v", diags)
	}
}

// Each limit holds at exactly its value and refuses one more, in the
// prescan (raw text) and in the measure of the parsed tree (aliases).
func TestLimitsAreExact(t *testing.T) {
	cases := []struct {
		name string
		lim  Limits
		ok   string
		bad  string
		want string
	}{
		{"flow depth", Limits{MaxDepth: 3}, "a: [[1]]", "a: [[[1]]]", "limit of 3 levels"},
		{"block depth", Limits{MaxDepth: 3}, "a:\n  b:\n    c: 1", "a:\n  b:\n    c:\n      d: 1", "limit of 3 levels"},
		{"compact depth", Limits{MaxDepth: 3}, "- - - 1", "- - - - 1", "limit of 3 levels"},
		{"depth through an alias", Limits{MaxDepth: 4}, "x: &a [[1]]\ny: [*a]", "x: &a [[1]]\ny: [[*a]]", "limit of 4 levels"},
		{"values", Limits{MaxNodes: 5}, "a: 1\nb: 2", "a: 1\nb: 2\nc: 3", "limit of 5 values"},
		{"values through an alias", Limits{MaxNodes: 10}, "a: &x [1, 2]\nb: *x", "a: &x [1, 2]\nb: *x\nc: *x", "aliases and merge keys expand to more than the limit of 10 values"},
		{"values through a merge", Limits{MaxNodes: 11}, "a: &x {k: 1}\nb: {<<: *x}", "a: &x {k: 1}\nb: {<<: *x}\nc: {<<: *x}", "limit of 11 values"},
		{"plain scalar", Limits{MaxScalarBytes: 10}, "a: 0123456789", "a: 0123456789x", "limit of 10 bytes"},
		{"quoted scalar", Limits{MaxScalarBytes: 10}, "a: '0123456789'", "a: '0123''45678'", "limit of 10 bytes"},
		{"block scalar", Limits{MaxScalarBytes: 10}, "a: |\n  0123\n  4567\n", "a: |\n  0123\n  45678\n", "limit of 10 bytes"},
		{"interpolated string", Limits{MaxScalarBytes: 10}, "a: abcde\nb: ${a}${a}", "a: abcde\nb: ${a}${a}x", "limit of 10 bytes"},
		{"interpolations", Limits{MaxNodes: 100}, "a: [1, 2]\nb: ${a}", "a: [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [\"${a}\", \"${a}\", \"${a}\", \"${a}\", \"${a}\", \"${a}\", \"${a}\", \"${a}\", \"${a}\", \"${a}\", \"${a}\"]", "interpolations resolve to more than the limit of 100 values"},
		{"file", Limits{MaxFileBytes: 8}, "a: 12345", "a: 123456", "limit of 8 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, diags := LoadLimited("t.yaml", []byte(c.ok), env(nil), c.lim); strings.Contains(diags.Error(), "limit") {
				t.Errorf("at the limit: %v", diags)
			}
			_, diags := LoadLimited("t.yaml", []byte(c.bad), env(nil), c.lim)
			if !strings.Contains(diags.Error(), c.want) {
				t.Errorf("past the limit: want %q, got %v", c.want, diags)
			}
			for _, d := range diags.Errors() {
				if d.Line < 1 {
					t.Errorf("no line: %s", d)
				}
			}
		})
	}
}

// Aliases under the limit still expand, and a key written beside a merge
// wins over the merged one whichever comes first (YAML merge semantics).
func TestAliasesAndMergesUnderTheLimit(t *testing.T) {
	src := "version: 2\nnodes: []\nx-base: &b {x: 1, y: 2}\nx-c: {<<: *b, y: 3}\nx-d: {y: 4, <<: *b}\nx-l: &l [1, 2]\nx-m: [*l, *l]\n"
	d, err := parseYAML([]byte(src), DefaultLimits)
	if err != nil || len(d.errs) > 0 {
		t.Fatal(err, d.errs)
	}
	_, diags := Load("t.yaml", []byte(src), env(nil))
	for _, dg := range diags.Errors() {
		t.Errorf("unexpected: %s", dg)
	}
	root := d.root.(*packet.Map)
	for key, want := range map[string]string{"x-c": "{'x': 1, 'y': 3}", "x-d": "{'y': 4, 'x': 1}", "x-m": "[[1, 2], [1, 2]]"} {
		v, _ := root.Get(key)
		if got := packet.PyStr(v); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
}

// An unknown edge endpoint suggests at most three ids, whatever the graph
// holds: nodes n0..n1999 and edges to "n" made messages of every id.
func TestSuggestionsAreFew(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 2\nnodes:\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "  - {id: n%d, plugin: 'schnitzel_stream.nodes.dev:Identity'}\n", i)
	}
	b.WriteString("edges:\n  - {from: n1, to: n}\n")
	g, diags := Load("g.yaml", []byte(b.String()), env(nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, vd := Validate(g, testRegistry(), plugin.Policy{AllowAll: true})
	want := `g.yaml:2004: edge n1 -> n: unknown node "n" (did you mean "n0" or "n1" or "n10"?)`
	for _, d := range vd.Errors() {
		if d.String() == want {
			return
		}
	}
	t.Errorf("want %s\ngot %v", want, vd)
}
