package detect

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A restarted adapter that prints the same traceback (one failing at
// import) logs it once, not on every restart.
func TestStderrRepeatedAcrossRestartsIsLoggedOnce(t *testing.T) {
	trace := "Traceback (most recent call last):\n  File \"a.py\", line 1\nModuleNotFoundError: No module named 'torch'\n"
	var logs bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&logs, nil))
	first := (&tail{}).copy(strings.NewReader(trace), lg, "a")
	if len(first) != 3 || strings.Count(logs.String(), "adapter stderr\" adapter=a line=") != 3 {
		t.Fatalf("first start: kept %q, logged:\n%s", first, logs.String())
	}
	for restart := 0; restart < 5; restart++ {
		logs.Reset()
		first = (&tail{prev: first}).copy(strings.NewReader(trace), lg, "a")
		if strings.Contains(logs.String(), "line=") || !strings.Contains(logs.String(), "lines=3") {
			t.Fatalf("restart %d logged the traceback again:\n%s", restart, logs.String())
		}
	}
	// A different message after the same start is logged.
	logs.Reset()
	(&tail{prev: first}).copy(strings.NewReader("Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'x'\n"), lg, "a")
	if !strings.Contains(logs.String(), "KeyError") || !strings.Contains(logs.String(), "lines=2") {
		t.Fatalf("a new line was not logged:\n%s", logs.String())
	}
}
