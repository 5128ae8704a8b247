package execnodes

import (
	"path/filepath"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func TestProcessSource(t *testing.T) {
	py := pythonOrSkip(t)
	once := filepath.Join(t.TempDir(), "once")
	for _, tc := range []struct {
		name   string
		config *packet.Map
		max    int
		want   []int64
	}{
		{"all", cfgMap("n", int64(5)), 0, []int64{0, 1, 2, 3, 4}},
		{"stop", cfgMap("n", int64(100000)), 3, []int64{0, 1, 2}},
		// A crash restarts the plugin, which starts over (documented).
		{"crash", cfgMap("n", int64(3), "crash_at", int64(2), "once", once), 0, []int64{0, 1, 0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := plugintest.Build(t, registry(), SourceName, "source", cfgMap(
				"command", list(py, abs(t, "testdata/count.py")), "config", tc.config, "backoff_sec", 0.01))
			plugintest.Start(t, n)
			defer plugintest.Close(t, n)
			out := plugintest.RunSource(t, n, tc.max)
			if len(out) != len(tc.want) {
				t.Fatalf("got %d packets, want %d", len(out), len(tc.want))
			}
			for i, p := range out {
				v, _ := p.Payload.(*packet.Map).Get("i")
				if v != tc.want[i] || p.Kind != "count" || p.SourceID != "n" || len(p.ID) != 36 || p.TS == "" {
					t.Errorf("packet %d: %+v, want i=%d, kind count, source_id n, a fresh id and ts", i, p, tc.want[i])
				}
			}
		})
	}
}
