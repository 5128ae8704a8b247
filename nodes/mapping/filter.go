package mapping

import (
	"context"
	"fmt"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// FilterConfig is Filter's config.
type FilterConfig struct {
	Condition   string `yaml:"condition" required:"true" doc:"Expression that must be true for a packet to pass; a result that is not a boolean is a runtime error (on_error)." example:"payload.temp > 30 && kind == \"event\""`
	ErrorPolicy `yaml:",inline"`
}

// Validate compiles the condition.
func (c *FilterConfig) Validate() error {
	errs := []error{c.ErrorPolicy.validate()}
	if strings.TrimSpace(c.Condition) == "" {
		errs = append(errs, plugin.Errorf("condition", "condition must not be empty"))
	} else if _, err := compile(c.Condition, true); err != nil {
		errs = append(errs, plugin.Errorf("condition", "%v", err))
	}
	return joinErrs(errs)
}

func registerFilter(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[FilterConfig]{
		Name:      mod + "Filter",
		Role:      plugin.RoleNode,
		Summary:   "Pass the packets for which an expression is true, drop the others (docs/processing.md).",
		Stability: plugin.Experimental,
		Metrics: []plugin.MetricSpec{
			{Name: "kept_total", Help: "Packets the condition was true for (passed on)."},
			{Name: "dropped_total", Help: "Packets the condition was false for (dropped on purpose)."},
			{Name: "eval_errors_total", Help: "Packets whose condition failed at run time or was not a boolean (handled by on_error)."},
		},
		Defaults: FilterConfig{ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c FilterConfig, env plugin.Env) (plugin.Processor, error) {
			p, err := compile(c.Condition, true)
			if err != nil {
				return nil, fmt.Errorf("node %q: condition: %w", env.NodeID, err)
			}
			cs := env.Counters()
			return &filter{cond: p, Counters: cs, kept: cs.Get("kept_total"), dropped: cs.Get("dropped_total"),
				failer: c.failer(env, cs)}, nil
		},
	})
}

type filter struct {
	cond *program
	run  runner
	*plugin.Counters
	kept, dropped *plugin.Counter
	failer
}

// test evaluates a condition for p.
func (r *runner) test(cond *program, p *packet.Packet) (bool, error) {
	r.env.fill(p)
	v, err := r.run(cond)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s: the condition gave %s, not a boolean", cond.src, typeOf(v))
	}
	return b, nil
}

func (f *filter) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	ok, err := f.run.test(f.cond, p)
	switch {
	case err != nil:
		return f.fail(p, fmt.Errorf("condition: %w", err), out)
	case ok:
		f.kept.Add(1)
		return out.Emit(p)
	}
	f.dropped.Add(1)
	return nil
}
