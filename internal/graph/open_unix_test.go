//go:build unix

package graph

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A FIFO nobody writes to used to block open(2) forever.
func TestNamedPipeWithoutWriterIsRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo.yaml")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	g, diags := LoadFile(p, env(nil))
	errs := diags.Errors()
	if g != nil || len(errs) != 1 || !strings.Contains(errs[0].Msg, "named pipe with no writer") || errs[0].File != p {
		t.Fatalf("got %v %v", g, diags)
	}
}
