package compat

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/nodes/all"
)

// Every slot taken: the next run is refused at once, not queued.
func TestRunnerBusy(t *testing.T) {
	rn := &runner{opts: engine.Options{Registry: all.Registry()}, timeout: time.Second, slots: make(chan struct{}, 1)}
	rn.slots <- struct{}{}
	if _, err := rn.run(context.Background(), "x", []byte("version: 2\n"), noEnv, 1); !errors.Is(err, errBusy) {
		t.Fatalf("err = %v, want errBusy", err)
	}
	<-rn.slots
	res, err := rn.run(context.Background(), "x", []byte("version: 2\nnodes: []\n"), noEnv, 1)
	if err != nil || res.ReturnCode != 2 {
		t.Fatalf("invalid graph: %+v, %v", res, err)
	}
	if len(rn.slots) != 0 {
		t.Fatal("slot not released")
	}
}

// The tail keeps the last 20 non-blank lines, each clipped.
func TestTail(t *testing.T) {
	var tl tail
	for i := range 50 {
		tl.Write([]byte(strings.Repeat("x", i) + "\n\n  \n"))
	}
	tl.Write([]byte(strings.Repeat("y", 10000)))
	lines := strings.Split(tl.String(), "\n")
	if len(lines) != 20 || lines[0] != strings.Repeat("x", 31) || len(lines[19]) != tailLineMax {
		t.Fatalf("%d lines, first %q, last %d bytes", len(lines), lines[0], len(lines[19]))
	}
}

// Paths: relative ones in the graphs dir, absolute ones in either root;
// .., absolute paths elsewhere, symlinks out, control characters refused.
func TestConfine(t *testing.T) {
	graphs, state, out := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(graphs, "a.yaml"), []byte("a"), 0o600)
	os.WriteFile(filepath.Join(out, "secret"), []byte("s"), 0o600)
	os.Symlink(filepath.Join(out, "secret"), filepath.Join(graphs, "ln"))
	os.Symlink(filepath.Join(graphs, "a.yaml"), filepath.Join(state, "in"))
	c := confine{graphs: graphs, state: state}
	for _, p := range []string{"a.yaml", "sub/new.yaml", filepath.Join(state, "x"), "./a.yaml", "sub/../a.yaml"} {
		if _, err := c.Resolve(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"../x", "/etc/passwd", "ln", filepath.Join(out, "secret"), "a\x00b", "a\nb", "", graphs + "/../" + filepath.Base(out) + "/secret"} {
		if r, err := c.Resolve(p); err == nil {
			t.Errorf("%q resolved to %s", p, r.Abs)
		}
	}
	// A symlink from the state dir into the graphs dir is inside a root.
	r, err := c.Resolve(filepath.Join(state, "in"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := r.ReadFile(); err != nil || string(b) != "a" {
		t.Fatalf("read %q, %v", b, err)
	}
	// A file swapped for a symlink out after Resolve is still refused.
	r, err = c.Resolve("a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(graphs, "a.yaml"))
	os.Symlink(filepath.Join(out, "secret"), filepath.Join(graphs, "a.yaml"))
	if b, err := r.ReadFile(); err == nil {
		t.Fatalf("read %q through a swapped symlink", b)
	}
}
