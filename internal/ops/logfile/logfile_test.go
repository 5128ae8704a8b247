package logfile

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

func TestOpenRotatesAndKeepsBackups(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs", "nested")
	path := filepath.Join(dir, "schnitzel.log")
	w, err := Open(Options{Path: path, MaxSizeMB: 1, MaxBackups: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	chunk := bytes.Repeat([]byte("x"), 600*1024)
	chunk[len(chunk)-1] = '\n'
	// 6 × 600 KiB with a 1 MiB limit: a rotation every second write.
	for i := 0; i < 6; i++ {
		if _, err := w.Write(chunk); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// Old backups are removed by a background goroutine: poll.
	var backups []string
	poll.Wait(5*time.Second, func() bool {
		backups, _ = filepath.Glob(filepath.Join(dir, "schnitzel-*.log"))
		return len(backups) == 2
	})
	if len(backups) != 2 {
		t.Fatalf("backups = %v, want 2 kept", backups)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 1<<20 {
		t.Errorf("live file is %d bytes, over the 1 MiB limit", fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("live file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"empty", Options{}, "empty path"},
		{"is dir", Options{Path: dir}, "is a directory"},
		{"parent is file", Options{Path: filepath.Join(file, "x.log")}, "create directory"},
		{"negative size", Options{Path: filepath.Join(dir, "a.log"), MaxSizeMB: -1}, "must be positive"},
		{"negative backups", Options{Path: filepath.Join(dir, "a.log"), MaxBackups: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

func TestMaskingHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewMaskingHandler(slog.NewTextHandler(&buf, nil)))
	log = log.With("url", "rtsp://u:p1@cam").WithGroup("g")
	log.Info("connect to http://x/?token=t2 failed",
		"err", errors.New("dial rtsp://u:p3@cam: refused"),
		"s", stringer{"http://a:p4@h"},
		slog.Group("inner", "u", "https://q:p5@h"),
		"n", 3)
	out := buf.String()
	for _, secret := range []string{"p1", "t2", "p3", "p4", "p5"} {
		if strings.Contains(out, secret+"@") || strings.Contains(out, "="+secret) {
			t.Errorf("secret %q leaked: %s", secret, out)
		}
	}
	for _, want := range []string{"url=rtsp://***:***@cam", "token=***", "g.n=3", "g.inner.u=https://***:***@h"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %s", want, out)
		}
	}
}
