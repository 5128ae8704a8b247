package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

type lossyCfg struct {
	Seen       int64 `yaml:"seen"`
	Lost       int64 `yaml:"lost"`
	Undeclared int64 `yaml:"undeclared"`
}

// lossy reports fixed metric values, one of them not in its spec.
type lossy struct{ c lossyCfg }

func (*lossy) Process(context.Context, *packet.Packet, plugin.Emitter) error { return nil }

func (l *lossy) Metrics() []plugin.Metric {
	return []plugin.Metric{
		{Name: "seen_total", Value: l.c.Seen},
		{Name: "lost_total", Value: l.c.Lost},
		{Name: "undeclared_total", Value: l.c.Undeclared},
	}
}

// The spec, not the values, says which metrics count losses.
func TestLossComesFromTheSpec(t *testing.T) {
	cases := []struct {
		name                   string
		seen, lost, undeclared int64
		degraded               bool
	}{
		{"nothing", 0, 0, 0, false},
		{"counted only", 5, 0, 0, false},
		{"declared loss", 5, 2, 0, true},
		{"undeclared is no loss", 0, 0, 7, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs logbuf.Buffer
			r, _ := run(t, fmt.Sprintf(`version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:StaticSource", config: {packets: [{payload: 1}]}}
  - {id: out, kind: sink, plugin: "schnitzel_stream.test:Lossy", config: {seen: %d, lost: %d, undeclared: %d}}
edges:
  - {from: src, to: out}
`, c.seen, c.lost, c.undeclared), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if r.Degraded != c.degraded {
				t.Errorf("degraded %v, want %v", r.Degraded, c.degraded)
			}
			if got := metric(r, "out").Lost; got != c.lost {
				t.Errorf("Lost %d, want %d", got, c.lost)
			}
			// the node always reports undeclared_total: the runtime says so once
			if got := strings.Count(logs.String(), "metric=undeclared_total"); got != 1 {
				t.Errorf("%d warnings about the undeclared metric, want 1:\n%s", got, logs.String())
			}
		})
	}
}
