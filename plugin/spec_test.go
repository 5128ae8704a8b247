package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
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

type testSource struct{}

func (testSource) Run(context.Context, Emitter) error { return nil }

type testProc struct{}

func (testProc) Process(context.Context, *packet.Packet, Emitter) error { return nil }

func TestRegisterChecksConstructor(t *testing.T) {
	type cfg struct{}
	src := func(cfg, Env) (Source, error) { return testSource{}, nil }
	proc := func(cfg, Env) (Processor, error) { return testProc{}, nil }
	anyFn := func(cfg, Env) (any, error) { return testProc{}, nil }
	fail := func(cfg, Env) (Source, error) { return testSource{}, errors.New("bad config") }
	cases := []struct {
		name   string
		spec   Spec[cfg]
		panics string
	}{
		{"source", Spec[cfg]{Role: RoleSource, NewSource: src}, ""},
		{"sink", Spec[cfg]{Role: RoleSink, NewProcessor: proc}, ""},
		{"untyped", Spec[cfg]{Role: RoleNode, New: anyFn}, ""},
		{"none", Spec[cfg]{Role: RoleNode}, "no constructor"},
		{"two", Spec[cfg]{Role: RoleNode, New: anyFn, NewProcessor: proc}, "set one of"},
		{"source ctor on a sink", Spec[cfg]{Role: RoleSink, NewSource: src}, "does not match"},
		{"processor ctor on a source", Spec[cfg]{Role: RoleSource, NewProcessor: proc}, "does not match"},
		{"failing ctor", Spec[cfg]{Role: RoleSource, NewSource: fail}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.spec.Name = "x.y:Z"
			r := NewRegistry()
			var got string
			func() {
				defer func() {
					if p := recover(); p != nil {
						got = p.(string)
					}
				}()
				Register(r, c.spec)
			}()
			if c.panics == "" && got != "" || !strings.Contains(got, c.panics) {
				t.Fatalf("panic %q, want %q", got, c.panics)
			}
			if got != "" {
				return
			}
			e, _ := r.Lookup("x.y:Z")
			dec, _, _ := e.Decode(nil)
			n, err := e.Build(dec, Env{})
			if c.name == "failing ctor" {
				// a typed constructor's error comes with no typed-nil node
				if err == nil || n != nil {
					t.Fatalf("got %v, %v; want nil and the error", n, err)
				}
				return
			}
			if err != nil || n == nil {
				t.Fatalf("build: %v, %v", n, err)
			}
		})
	}
}
