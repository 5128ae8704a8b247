package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Each output format lists a node's declared metrics.
func TestPluginsShowMetrics(t *testing.T) {
	cases := []struct {
		format string
		want   []string
	}{
		{"text", []string{"metric dead_lettered_total: counter (loss: degrades the run)", "metric queue_depth: gauge"}},
		{"markdown", []string{"| `dead_lettered_total` | counter | yes |", "| `queue_depth` | gauge |  |"}},
	}
	for _, c := range cases {
		t.Run(c.format, func(t *testing.T) {
			r := runCLI(t, nil, "", "plugins", "--format", c.format, "SqliteQueueSource")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	r := runCLI(t, nil, "", "plugins", "--json", "SqliteQueueSource")
	var infos []plugin.Info
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	m, ok := (&plugin.Entry{Info: infos[0]}).Metric("dead_lettered_total")
	if !ok || !m.Loss || m.Gauge || m.Help == "" {
		t.Errorf("json: dead_lettered_total = %+v, %v", m, ok)
	}
}
