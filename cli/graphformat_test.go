package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// graphExample matches a fenced yaml block right after the marker comment
// that docs/graph-format.md puts before every complete graph.
var graphExample = regexp.MustCompile("(?s)<!-- graph-example -->\n```yaml\n(.*?)```")

// TestGraphFormatExamplesValidate keeps docs/graph-format.md honest: every
// graph example in it validates, warnings included (--strict).
func TestGraphFormatExamplesValidate(t *testing.T) {
	doc, err := os.ReadFile("../docs/graph-format.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := graphExample.FindAllSubmatch(doc, -1)
	if len(examples) < 5 {
		t.Fatalf("found %d graph examples in docs/graph-format.md, want at least 5", len(examples))
	}
	dir := t.TempDir()
	for i, m := range examples {
		p := filepath.Join(dir, "example"+string(rune('a'+i))+".yaml")
		if err := os.WriteFile(p, m[1], 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, nil, "", "validate", "--strict", "--graph", p)
		if r.code != 0 {
			t.Errorf("example %d does not validate (exit %d):\n%s\n%s", i+1, r.code, m[1], r.stderr)
		}
	}
}
