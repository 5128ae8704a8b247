// Package mapping holds the expression nodes: Mapping (set, rename and
// delete fields), Filter (keep packets a condition holds for), Switch
// (route by conditions to named ports) and Split (one packet per element
// of a list). Expressions are expr-lang/expr programs over the packet
// (docs/processing.md), compiled when the graph is validated, so that a
// syntax or type error is a `schnitzel validate` error at the key's line,
// and compiled again, once, when the node is built: nothing is compiled
// per packet.
package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const mod = "schnitzel_stream.nodes.map:"

// Register adds the expression nodes to r.
func Register(r *plugin.Registry) {
	registerMapping(r)
	registerFilter(r)
	registerSwitch(r)
	registerSplit(r)
	registerDedupe(r)
	registerRateLimit(r)
	registerBatch(r)
	registerWindow(r)
	registerMerge(r)
}

// On-error policies for a runtime error (a division by zero, a fetch from
// nil, a result of the wrong type).
const (
	onErrorDrop  = "drop"  // the packet is lost, counted; the run ends degraded
	onErrorFail  = "error" // the run ends with status error
	onErrorPass  = "pass"  // the input goes on unchanged, counted
	onErrorEnums = "drop,error,pass"
)

// ErrorPolicy is the on_error key every expression node has.
type ErrorPolicy struct {
	OnError   string `yaml:"on_error" enum:"drop,error,pass" doc:"What a runtime error in an expression does (division by zero, a field read from null, a result of the wrong type): drop the packet (counted in eval_errors_total; the run ends degraded), error (the run fails) or pass (the input goes on unchanged, counted)."`
	ErrorPort string `yaml:"error_port" doc:"Output port for the packets a runtime error hit, instead of on_error: the input, with meta.error holding the message (counted in eval_errors_total). Empty: on_error decides."`
}

// OutPorts makes the error port an output port (plugin.PortConfig).
func (e ErrorPolicy) OutPorts() []string {
	if e.ErrorPort == "" {
		return []string{}
	}
	return []string{e.ErrorPort}
}

func (e ErrorPolicy) validate() error {
	if e.ErrorPort != "" && !validPort(e.ErrorPort) {
		return plugin.Errorf("error_port", "port %q must be a name (letters, digits, _; not starting with a digit)", e.ErrorPort)
	}
	return nil
}

// failer takes the node's eval_errors_total from cs (every node with an
// ErrorPolicy declares it).
func (e ErrorPolicy) failer(env plugin.Env, cs *plugin.Counters) failer {
	return failer{id: env.NodeID, policy: e.OnError, port: e.ErrorPort, log: env.Logger, errors: cs.Get("eval_errors_total")}
}

// failer applies an ErrorPolicy.
type failer struct {
	id     string
	policy string
	port   string
	log    *slog.Logger
	warn   plugin.RateLog
	errors *plugin.Counter
}

// fail handles err for packet p; it returns what Process returns.
func (f *failer) fail(p *packet.Packet, err error, out plugin.Emitter) error {
	f.errors.Add(1)
	err = fmt.Errorf("node %q: packet %s: %w", f.id, p.ID, err)
	if f.port != "" {
		q := p.Copy()
		q.Meta = p.Meta.Clone(1)
		q.Meta.Set("error", err.Error())
		return out.EmitPort(f.port, q)
	}
	switch f.policy {
	case onErrorFail:
		return err
	case onErrorPass:
		f.warn.Warn(f.log, "expression failed; packet passed on unchanged", "err", err.Error())
		return out.Emit(p)
	}
	return plugin.DropPacket(err)
}

// MappingConfig is Mapping's config.
type MappingConfig struct {
	Set         *packet.Map `yaml:"set" doc:"Fields to set, in the order written: path -> expression. Each expression sees the packet as the sets before it left it. Paths: payload (the whole payload), payload.a.b (objects on the way are created), meta.x, kind, source_id." example:"{\"payload.total\": \"payload.a + payload.b\"}"`
	Rename      *packet.Map `yaml:"rename" doc:"Fields to move after the sets, in order: from path -> to path. A missing from path is no change."`
	Delete      []string    `yaml:"delete" doc:"Paths to remove after the renames; a missing path is no change."`
	ErrorPolicy `yaml:",inline"`
}

type setOp struct {
	path path
	src  string
}

// ops checks the config and returns its operations (expressions not
// compiled): Validate and New share it.
func (c *MappingConfig) ops() (sets []setOp, renames [][2]path, dels []path, errs []error) {
	for _, e := range c.Set.Entries() {
		key := "set." + e.Key
		p, err := parsePath(e.Key)
		if err != nil {
			errs = append(errs, plugin.Errorf(key, "%v", err))
			continue
		}
		src, ok := exprText(e.Value)
		if !ok {
			errs = append(errs, plugin.Errorf(key, "expected an expression (a string), got %T", e.Value))
			continue
		}
		sets = append(sets, setOp{path: p, src: src})
	}
	for _, e := range c.Rename.Entries() {
		key := "rename." + e.Key
		from, err := parsePath(e.Key)
		if err != nil {
			errs = append(errs, plugin.Errorf(key, "%v", err))
			continue
		}
		s, ok := e.Value.(string)
		if !ok {
			errs = append(errs, plugin.Errorf(key, "expected a path (a string), got %T", e.Value))
			continue
		}
		to, err := parsePath(s)
		if err != nil {
			errs = append(errs, plugin.Errorf(key, "%v", err))
			continue
		}
		if from.root == "kind" || from.root == "source_id" || (from.root == "payload" && len(from.keys) == 0) {
			errs = append(errs, plugin.Errorf(key, "%s cannot be renamed (set it instead)", from.text))
			continue
		}
		renames = append(renames, [2]path{from, to})
	}
	for i, s := range c.Delete {
		p, err := parsePath(s)
		if err == nil && (p.root == "kind" || p.root == "source_id") {
			err = errors.New("kind and source_id cannot be deleted")
		}
		if err != nil {
			errs = append(errs, plugin.Errorf(fmt.Sprintf("delete[%d]", i), "%v", err))
			continue
		}
		dels = append(dels, p)
	}
	return sets, renames, dels, errs
}

// exprText accepts a YAML scalar as an expression: `n: 1` means the
// expression 1.
func exprText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool, int64, float64:
		return packet.PyStr(x), true
	}
	return "", false
}

// Validate compiles every expression: an error names its key.
func (c *MappingConfig) Validate() error {
	_, err := c.compile()
	return err
}

func (c *MappingConfig) compile() (*mapper, error) {
	sets, renames, dels, errs := c.ops()
	m := &mapper{renames: renames, dels: dels}
	m.work.grow = len(sets)
	for _, s := range sets {
		p, err := compile(s.src, false)
		if err != nil {
			errs = append(errs, plugin.Errorf("set."+s.path.text, "%v", err))
			continue
		}
		m.sets = append(m.sets, compiledSet{path: s.path, prog: p})
	}
	if err := c.ErrorPolicy.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && len(m.sets)+len(renames)+len(dels) == 0 {
		errs = append(errs, plugin.Errorf("set", "nothing to do: give set, rename or delete"))
	}
	return m, errors.Join(errs...)
}

type compiledSet struct {
	path path
	prog *program
}

type mapper struct {
	sets    []compiledSet
	renames [][2]path
	dels    []path

	*plugin.Counters
	failer
	run  runner
	work work
}

func registerMapping(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[MappingConfig]{
		Name:      mod + "Mapping",
		Role:      plugin.RoleNode,
		Summary:   "Set, rename and delete fields of each packet with expressions (docs/processing.md).",
		Stability: plugin.Experimental,
		Description: "Sets run in the order written and each sees the packet as the ones before left it; then renames, then deletes. " +
			"The input packet is never changed: the output is a copy (same packet_id and ts) whose changed objects are copies.",
		Metrics:  []plugin.MetricSpec{{Name: "eval_errors_total", Help: "Packets whose expressions failed at run time (handled by on_error)."}},
		Defaults: MappingConfig{ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c MappingConfig, env plugin.Env) (plugin.Processor, error) {
			m, err := c.compile()
			if err != nil {
				return nil, fmt.Errorf("node %q: %w", env.NodeID, err)
			}
			cs := env.Counters()
			m.Counters = cs
			m.failer = c.failer(env, cs)
			return m, nil
		},
	})
}

func (m *mapper) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	w := &m.work
	w.reset(p)
	for _, s := range m.sets {
		m.run.env.fill(w.p)
		v, err := m.run.run(s.prog)
		if err == nil {
			if v, err = toPacket(v); err == nil {
				err = w.set(s.path, v)
			}
		}
		if err != nil {
			return m.fail(p, fmt.Errorf("set %s: %w", s.path.text, err), out)
		}
	}
	for _, r := range m.renames {
		if err := w.rename(r[0], r[1]); err != nil {
			return m.fail(p, fmt.Errorf("rename %s: %w", r[0].text, err), out)
		}
	}
	for _, d := range m.dels {
		if err := w.delete(d); err != nil {
			return m.fail(p, fmt.Errorf("delete %s: %w", d.text, err), out)
		}
	}
	q := w.p
	w.p = nil
	return out.Emit(q)
}
