package execnodes

import (
	"testing"

	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func TestUpperExample(t *testing.T) {
	py := pythonOrSkip(t)
	n := plugintest.Build(t, registry(), NodeName, "node", cfgMap(
		"command", list(py, abs(t, "../../examples/plugins/python/upper.py")),
		"config", cfgMap("field", "msg"),
	))
	plugintest.Start(t, n)
	defer plugintest.Close(t, n)
	out := plugintest.Process(t, n, payload("msg", "héllo", "n", int64(1)), payload("msg", "two"))
	if len(out) != 2 {
		t.Fatalf("got %d packets, want 2", len(out))
	}
	for i, want := range []string{"HÉLLO", "TWO"} {
		m := out[i].Payload.(interface{ GetString(string) (string, bool) })
		if s, _ := m.GetString("msg"); s != want {
			t.Errorf("packet %d: msg = %q, want %q", i, s, want)
		}
	}
}
