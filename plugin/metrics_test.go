package plugin

import (
	"strings"
	"testing"
)

func TestRegisterChecksMetrics(t *testing.T) {
	type cfg struct{}
	cases := []struct {
		name    string
		metrics []MetricSpec
		panics  string // "" = registers
	}{
		{"ok", []MetricSpec{{Name: "sent_total", Help: "Sent."}, {Name: "queue_depth", Help: "Rows.", Gauge: true}, {Name: "lost_total", Help: "Lost.", Loss: true}}, ""},
		{"malformed name", []MetricSpec{{Name: "Sent-Total", Help: "x"}}, "malformed metric name"},
		{"twice", []MetricSpec{{Name: "a_total", Help: "x"}, {Name: "a_total", Help: "y"}}, "declared twice"},
		{"no help", []MetricSpec{{Name: "a_total", Help: " "}}, "no help"},
		{"counter without _total", []MetricSpec{{Name: "sent", Help: "x"}}, "counters end in _total"},
		{"gauge with _total", []MetricSpec{{Name: "depth_total", Help: "x", Gauge: true}}, "counters end in _total"},
		{"gauge loss", []MetricSpec{{Name: "depth", Help: "x", Gauge: true, Loss: true}}, "cannot count losses"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			func() {
				defer func() {
					if r := recover(); r != nil {
						got = r.(string)
					}
				}()
				Register(NewRegistry(), Spec[cfg]{Name: "x.y:Z", Role: RoleSink, Metrics: c.metrics,
					New: func(cfg, Env) (any, error) { return nil, nil }})
			}()
			if c.panics == "" && got != "" || !strings.Contains(got, c.panics) {
				t.Fatalf("panic %q, want %q", got, c.panics)
			}
		})
	}
	r := NewRegistry()
	Register(r, Spec[cfg]{Name: "x.y:Z", Role: RoleSink, Metrics: cases[0].metrics, New: func(cfg, Env) (any, error) { return nil, nil }})
	e, _ := r.Lookup("x.y:Z")
	if m, ok := e.Metric("lost_total"); !ok || !m.Loss {
		t.Errorf("Metric(lost_total) = %+v, %v", m, ok)
	}
	if _, ok := e.Metric("nope_total"); ok {
		t.Error("Metric found an undeclared name")
	}
}
