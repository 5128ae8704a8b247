package mapping

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SwitchCase is one route of a Switch.
type SwitchCase struct {
	Port      string `yaml:"port" required:"true" doc:"Output port (an edge's from_port) of the packets this case matches."`
	Condition string `yaml:"condition" required:"true" doc:"Expression; the case matches when it is true."`
}

// SwitchConfig is Switch's config.
type SwitchConfig struct {
	Cases       []SwitchCase `yaml:"cases" required:"true" doc:"Routes, tried in order: [{port, condition}, ...]."`
	AllMatches  bool         `yaml:"all_matches" doc:"Send a packet to every case that matches, not only the first."`
	DefaultPort string       `yaml:"default_port" doc:"Port of the packets no case matches; empty: the edges without from_port."`
	ErrorPolicy `yaml:",inline"`
}

// OutPorts are the ports this config routes to (plugin.PortConfig): the
// validator checks edges' from_port against them.
func (c SwitchConfig) OutPorts() []string {
	var ports []string
	for _, k := range c.Cases {
		if k.Port != "" && !slices.Contains(ports, k.Port) {
			ports = append(ports, k.Port)
		}
	}
	for _, p := range append([]string{c.DefaultPort}, c.ErrorPolicy.OutPorts()...) {
		if p != "" && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// Validate compiles every condition.
func (c *SwitchConfig) Validate() error {
	_, err := c.compile()
	return err
}

func (c *SwitchConfig) compile() ([]*program, error) {
	errs := []error{c.ErrorPolicy.validate()}
	if len(c.Cases) == 0 {
		errs = append(errs, plugin.Errorf("cases", "give at least one case"))
	}
	progs := make([]*program, len(c.Cases))
	for i, k := range c.Cases {
		key := fmt.Sprintf("cases[%d]", i)
		if !validPort(k.Port) {
			errs = append(errs, plugin.Errorf(key+".port", "port %q must be a name (letters, digits, _; not starting with a digit)", k.Port))
		}
		p, err := compile(k.Condition, true)
		if err != nil {
			errs = append(errs, plugin.Errorf(key+".condition", "%v", err))
			continue
		}
		progs[i] = p
	}
	if c.DefaultPort != "" && !validPort(c.DefaultPort) {
		errs = append(errs, plugin.Errorf("default_port", "port %q must be a name (letters, digits, _; not starting with a digit)", c.DefaultPort))
	}
	return progs, joinErrs(errs)
}

func validPort(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0
}

func registerSwitch(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[SwitchConfig]{
		Name:      mod + "Switch",
		Role:      plugin.RoleNode,
		Summary:   "Route each packet to the output port of the first case whose condition is true (docs/processing.md).",
		Stability: plugin.Experimental,
		Description: "The ports are the cases' ports and default_port: edges name them with from_port. " +
			"With all_matches the packet goes to every matching case's port (the same packet: ports share it).",
		Metrics: []plugin.MetricSpec{
			{Name: "matched_total", Help: "Packets at least one case matched."},
			{Name: "unmatched_total", Help: "Packets no case matched (sent to default_port)."},
			{Name: "eval_errors_total", Help: "Packets whose condition failed at run time or was not a boolean (handled by on_error)."},
		},
		Defaults: SwitchConfig{DefaultPort: "default", ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c SwitchConfig, env plugin.Env) (plugin.Processor, error) {
			progs, err := c.compile()
			if err != nil {
				return nil, fmt.Errorf("node %q: %w", env.NodeID, err)
			}
			cs := env.Counters()
			s := &switcher{all: c.AllMatches, def: c.DefaultPort, Counters: cs,
				matched: cs.Get("matched_total"), unmatched: cs.Get("unmatched_total"), failer: c.failer(env, cs)}
			for i, k := range c.Cases {
				s.cases = append(s.cases, switchCase{port: k.Port, cond: progs[i]})
			}
			return s, nil
		},
	})
}

type switchCase struct {
	port string
	cond *program
}

type switcher struct {
	cases []switchCase
	all   bool
	def   string
	run   runner
	hit   []string // ports matched by the current packet

	*plugin.Counters
	matched, unmatched *plugin.Counter
	failer
}

func (s *switcher) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	// Every condition is evaluated before anything is emitted, so that a
	// failing one does not leave the packet sent to some ports only.
	s.hit = s.hit[:0]
	for i, k := range s.cases {
		ok, err := s.run.test(k.cond, p)
		if err != nil {
			return s.fail(p, fmt.Errorf("cases[%d].condition: %w", i, err), out)
		}
		if ok && !slices.Contains(s.hit, k.port) {
			s.hit = append(s.hit, k.port)
			if !s.all {
				break
			}
		}
	}
	if len(s.hit) == 0 {
		s.unmatched.Add(1)
		if s.def == "" {
			return out.Emit(p)
		}
		return out.EmitPort(s.def, p)
	}
	s.matched.Add(1)
	for _, port := range s.hit {
		if err := out.EmitPort(port, p); err != nil {
			return err
		}
	}
	return nil
}
