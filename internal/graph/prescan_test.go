package graph

import (
	"strings"
	"testing"
)

func TestPrescanFlowContinuation(t *testing.T) {
	for _, c := range []struct {
		src   string
		nodes int
	}{
		{"x: [a\n b\n c]", 4},
		{"x: [a\n\n b, c]", 5},
		{"x: [a, # c\n b]", 5},
	} {
		if err := prescan([]byte(c.src), Limits{MaxDepth: 10, MaxNodes: c.nodes, MaxScalarBytes: 100}); err != nil {
			t.Errorf("%q: %v", c.src, err)
		}
		if err := prescan([]byte(c.src), Limits{MaxDepth: 10, MaxNodes: c.nodes - 1, MaxScalarBytes: 100}); err == nil {
			t.Errorf("%q: counted fewer than %d", c.src, c.nodes)
		}
	}
}

// A lone CR breaks lines for YAML, so it does for the prescan: a file
// with old Mac line endings is not one long line that hides its nesting.
func TestPrescanLineBreaks(t *testing.T) {
	var b []byte
	for i := range 70 {
		for range i {
			b = append(b, ' ')
		}
		b = append(b, "k:\r"...)
	}
	err := prescan(b, DefaultLimits)
	if err == nil || err.pos.Line != 65 || !strings.Contains(err.msg, "nesting deeper") {
		t.Fatalf("got %v", err)
	}
}
