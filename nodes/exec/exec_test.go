package execnodes

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// python returns the interpreter the tests run plugins with, or skips.
func pythonOrSkip(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SCHNITZEL_PYTHON"); p != "" {
		return p
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	return p
}

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	Register(r)
	return r
}

func abs(t testing.TB, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cfgMap builds a config map from key/value pairs.
func cfgMap(kv ...any) *packet.Map {
	m := packet.NewMap(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		m.Set(kv[i].(string), kv[i+1])
	}
	return m
}

func list(ss ...string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func payload(kv ...any) *packet.Packet {
	return packet.New("raw", "t", cfgMap(kv...), "", nil)
}
