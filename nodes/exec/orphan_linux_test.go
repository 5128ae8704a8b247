package execnodes

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// alive reports whether pid runs (a zombie, waiting to be reaped by
// whoever inherited it, does not count).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// Close kills the plugin's whole process group: what the plugin started
// does not outlive it.
func TestCloseLeavesNoOrphan(t *testing.T) {
	n, _ := misbehave(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	plugintest.Process(t, n, payload("do", "grandchild", "pidfile", pidfile))
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatalf("grandchild %d is not running before Close", pid)
	}
	plugintest.Close(t, n)
	poll.Until(t, 10*time.Second, "the plugin's grandchild to die with its group", func() bool { return !alive(pid) })
}
