// Package childproc holds what every supervisor of a child process needs
// (the exec plugin nodes, the detector adapters): its name for messages
// with secrets masked, a process group killed as one, and the last lines
// of its stderr for crash messages.
package childproc

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/schnitzel-stream/schnitzel/redact"
)

// Name renders argv for messages: words joined by spaces, quoted when
// empty or holding spaces or quotes, secrets masked (an argument may be a
// URL with credentials), cut at 200 bytes, in brackets.
func Name(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		a = redact.Text(a)
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		parts[i] = a
	}
	s := strings.Join(parts, " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return "[" + s + "]"
}

// maxLine is the longest stderr line kept; the rest is cut with "...".
const maxLine = 500

// ScanLines calls each for every line of r until EOF, lines longer than
// 500 bytes cut, then drains r so the child never blocks on a full pipe.
func ScanLines(r io.Reader, each func(line string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > maxLine {
			line = line[:maxLine] + "..."
		}
		each(line)
	}
	_, _ = io.Copy(io.Discard, r)
}

// tailLines is how many last stderr lines a crash message carries.
const tailLines = 5

// Tail keeps the last lines of a child's stderr (they usually hold the
// traceback). Safe for concurrent use.
type Tail struct {
	mu    sync.Mutex
	lines []string
}

// Add keeps line, forgetting the oldest beyond the last five.
func (t *Tail) Add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[1:]
	}
}

// String joins the kept lines with " | ".
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}
