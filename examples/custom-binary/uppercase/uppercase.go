// Package uppercase is a third-party node as it would live in its own
// module: one typed config, one Spec, one Register. docs/writing-nodes.md
// walks through it.
package uppercase

import (
	"context"
	"errors"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Name is the plugin string graphs use. Any "module:Class" string works;
// a prefix of your own keeps it apart from the built-in nodes.
const Name = "example.nodes:Uppercase"

// Config is the node's config: the yaml and doc tags are what the
// validator checks and `schnitzel plugins` prints.
type Config struct {
	Field string `yaml:"field" doc:"Payload key whose string value is upper-cased."`
}

// Validate runs after decoding: a bad config fails validation, before
// anything runs.
func (c *Config) Validate() error {
	if c.Field == "" {
		return errors.New("field must not be empty")
	}
	return nil
}

// Register adds the node to r.
func Register(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[Config]{
		Name:      Name,
		Role:      plugin.RoleNode,
		Summary:   "Upper-case one string field of a map payload.",
		Stability: plugin.Experimental,
		Defaults:  Config{Field: "message"},
		Metrics:   []plugin.MetricSpec{{Name: "upper_total", Help: "Packets whose field was upper-cased."}},
		NewProcessor: func(c Config, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters() // the metrics Spec.Metrics declares
			return &node{field: c.Field, Counters: cs, upper: cs.Get("upper_total")}, nil
		},
	})
}

type node struct {
	field            string
	*plugin.Counters // reports upper_total (node.<id>.upper_total)
	upper            *plugin.Counter
}

// Process emits a copy of p whose payload has the field upper-cased;
// packets without it pass unchanged. The payload map is cloned, not
// changed in place: another branch of the graph may hold the same packet.
func (n *node) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	m, ok := p.Payload.(*packet.Map)
	if !ok {
		return out.Emit(p)
	}
	s, ok := m.GetString(n.field)
	if !ok {
		return out.Emit(p)
	}
	c := p.Copy()
	pm := m.Clone(0)
	pm.Set(n.field, strings.ToUpper(s))
	c.Payload = pm
	n.upper.Add(1)
	return out.Emit(c)
}
