package childproc

import (
	"fmt"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"python3", "adapter.py"}, "[python3 adapter.py]"},
		{[]string{"./plug", "two words", ""}, `[./plug "two words" ""]`},
		{[]string{"./plug", "--url", "https://user:hunter2@example.com/x?token=abc"}, "[./plug --url https://***:***@example.com/x?token=***]"},
	} {
		if got := Name(tc.argv); got != tc.want {
			t.Errorf("Name(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
	long := Name([]string{strings.Repeat("a", 300)})
	if len(long) != 1+200+3+1 || !strings.HasSuffix(long, "...]") {
		t.Errorf("a 300-byte argv renders as %d bytes: %s", len(long), long)
	}
}

func TestScanLinesAndTail(t *testing.T) {
	var in strings.Builder
	for i := range 8 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	in.WriteString(strings.Repeat("x", 2000) + "\n")
	var tl Tail
	n := 0
	ScanLines(strings.NewReader(in.String()), func(l string) { n++; tl.Add(l) })
	if n != 9 {
		t.Fatalf("ScanLines saw %d lines, want 9", n)
	}
	got := tl.String()
	if !strings.HasPrefix(got, "line 4 | line 5 | line 6 | line 7 | ") || !strings.HasSuffix(got, strings.Repeat("x", 500)+"...") {
		t.Errorf("Tail = %.80q...", got)
	}
}
