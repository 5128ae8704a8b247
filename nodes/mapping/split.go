package mapping

import (
	"context"
	"fmt"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SplitConfig is Split's config.
type SplitConfig struct {
	Field       string `yaml:"field" required:"true" doc:"Path of the list to split (payload.items; payload when the payload is the list)."`
	As          string `yaml:"as" doc:"Path each element is placed at in its packet (the rest of the payload kept); empty: the element replaces the payload."`
	IndexKey    string `yaml:"index_key" doc:"Meta key that receives the element's index (0..n-1); empty: none."`
	ErrorPolicy `yaml:",inline"`
}

// Validate checks the paths.
func (c *SplitConfig) Validate() error {
	errs := []error{c.ErrorPolicy.validate()}
	if p, err := parsePath(c.Field); err != nil {
		errs = append(errs, plugin.Errorf("field", "%v", err))
	} else if p.root == "kind" || p.root == "source_id" {
		errs = append(errs, plugin.Errorf("field", "%s is a string, not a list", p.root))
	}
	if c.As != "" {
		if _, err := parsePath(c.As); err != nil {
			errs = append(errs, plugin.Errorf("as", "%v", err))
		}
	}
	return joinErrs(errs)
}

func registerSplit(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[SplitConfig]{
		Name:      mod + "Split",
		Role:      plugin.RoleNode,
		Summary:   "Emit one packet per element of a list field, each with a new packet_id and the input's ts, kind, source_id and meta.",
		Stability: plugin.Experimental,
		Description: "A missing field, null or an empty list emits nothing; a value that is not a list is a runtime error (on_error). " +
			"With as, the element is set at that path of a copy of the payload, and the list field is removed.",
		Metrics: []plugin.MetricSpec{
			{Name: "emitted_total", Help: "Packets emitted (list elements)."},
			{Name: "eval_errors_total", Help: "Packets whose field was not a list (handled by on_error)."},
		},
		Defaults: SplitConfig{Field: "payload.items", ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c SplitConfig, env plugin.Env) (plugin.Processor, error) {
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("node %q: %w", env.NodeID, err)
			}
			cs := env.Counters()
			s := &splitter{indexKey: c.IndexKey, Counters: cs, emitted: cs.Get("emitted_total"), failer: c.failer(env, cs)}
			s.field, _ = parsePath(c.Field)
			if c.As != "" {
				as, _ := parsePath(c.As)
				s.as = &as
			}
			return s, nil
		},
	})
}

type splitter struct {
	field    path
	as       *path
	indexKey string
	work     work
	*plugin.Counters
	emitted *plugin.Counter
	failer
}

func (s *splitter) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	w := &s.work
	w.reset(p)
	v, _ := w.lookup(s.field)
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return s.fail(p, fmt.Errorf("%s is %s, not a list", s.field.text, typeOf(v)), out)
	}
	var base *packet.Packet
	if s.as != nil {
		// The payload every element goes into: the input's without the list.
		if err := w.delete(s.field); err != nil {
			return s.fail(p, err, out)
		}
		base = w.p
	}
	extra := 0
	if s.indexKey != "" {
		extra = 1
	}
	for i, e := range list {
		q := packet.Derive(p, extra)
		if s.indexKey != "" {
			q.Meta.Set(s.indexKey, int64(i))
		}
		if s.as == nil {
			q.Payload = e
		} else {
			ew := work{p: q}
			q.Payload = base.Payload
			ew.owned = append(ew.owned, q.Meta)
			if err := ew.set(*s.as, e); err != nil {
				return s.fail(p, err, out)
			}
			q = ew.p
		}
		s.emitted.Add(1)
		if err := out.Emit(q); err != nil {
			return err
		}
	}
	return nil
}
