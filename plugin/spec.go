package plugin

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Stability labels a node's maturity.
type Stability string

// Stability levels.
const (
	Stable       Stability = "stable"
	Beta         Stability = "beta"
	Experimental Stability = "experimental"
)

// Spec declares a node once. The registry, the validator, `schnitzel plugins`
// and docs/nodes.md all read it.
//
// C is the typed config: a struct whose fields carry `yaml:"key"` and
// `doc:"..."` tags (optionally `required:"true"`, `enum:"a,b"`). Defaults is
// applied before decoding, so every default is visible in the docs. If *C
// has a `Validate() error` method it runs after decoding.
type Spec[C any] struct {
	Name    string   // upstream plugin string, e.g. schnitzel_stream.nodes.dev:StaticSource
	Aliases []string // other spellings (seed vs HEAD module paths)
	Role    Role
	In, Out []string // packet kinds; nil or "*" is any
	// InProfile, OutProfile are upstream's payload profiles (HEAD's
	// INPUT_PROFILE/OUTPUT_PROFILE): ProfileJSON for nodes that write or
	// store packets, ProfileInproc for nodes that need in-process values;
	// "" = none. Out kinds with "frame" or "bytes" imply ProfileInproc out.
	InProfile, OutProfile string
	OutPorts              []string // named output ports the node emits on (EmitPort); nil = default only
	// PortAware is true when the node implements PortProcessor, so that an
	// edge's to_port means something to it (validation warns otherwise).
	PortAware bool
	// Commits is true for nodes that store packets durably and then call
	// packet.Ack (the SQLite queue sink): the runtime tells the nodes
	// upstream of one (Env.CommitDownstream) so that a source which can
	// hold its own acknowledgement (MQTT QoS 1/2, an HTTP 202, a JetStream
	// message) waits for the commit instead of acking on receipt.
	Commits bool
	// StdoutData is true for nodes that write a data stream (JSON lines)
	// on standard output: the CLI then prints its run summary on stderr,
	// so that `schnitzel ... | jq` reads only data.
	StdoutData bool
	// Ignored are config keys upstream's node accepts and ignores, which
	// upstream's own graph files set: warnings, not errors (docs/compat.md).
	Ignored     []string
	Summary     string // one line
	Description string // paragraphs, markdown
	Stability   Stability
	// Metrics declares every counter and gauge the node's Metrics method
	// reports, in the same order: the docs list them and the runtime reads
	// Loss from here, so a node's values carry only name and value.
	Metrics  []MetricSpec
	Defaults C
	// Exactly one constructor is set. The typed ones make a constructor
	// that returns the wrong kind of node a compile error; Register checks
	// they match Role (NewSource for sources, NewProcessor or
	// NewBatchProcessor for nodes and sinks). New returns any: the runtime
	// checks the value when it builds the graph, and
	// plugintest.Conformance checks it in a test.
	NewSource         func(cfg C, env Env) (Source, error)
	NewProcessor      func(cfg C, env Env) (Processor, error)
	NewBatchProcessor func(cfg C, env Env) (BatchProcessor, error)
	New               func(cfg C, env Env) (any, error)
}

// MetricSpec declares one of a node's own metrics (see Metrics).
type MetricSpec struct {
	Name string `json:"name"` // counters end in _total, gauges do not (Prometheus' convention)
	Help string `json:"help"` // one line: what it counts
	// Gauge marks a level that goes up and down (a queue depth); otherwise
	// the metric is a counter that only grows.
	Gauge bool `json:"gauge,omitempty"`
	// Loss marks a counter of packets lost on purpose or given up on
	// (drops, dead letters, retries exhausted): a non-zero value makes the
	// run report say "degraded".
	Loss bool `json:"loss,omitempty"`
}

var metricName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkMetrics panics on a malformed metric list: like a malformed name,
// it is a programming error and should fail the first test that registers.
// ReservedMetric reports whether name is one of the per-node metrics the
// runtime reports for every node (the run report's node.<id>.<name>): a
// node may not declare one, or its value would be silently replaced.
func ReservedMetric(name string) bool {
	switch name {
	case "consumed", "produced", "is_source", "is_sink", "inbox_dropped_total",
		"errors_total", "process_avg_us", "process_max_us", "abandoned_total":
		return true
	}
	return false
}

func checkMetrics(node string, ms []MetricSpec) {
	seen := map[string]bool{}
	for _, m := range ms {
		switch {
		case !metricName.MatchString(m.Name):
			panic(fmt.Sprintf("plugin %s: malformed metric name %q (want lower_snake_case)", node, m.Name))
		case seen[m.Name]:
			panic(fmt.Sprintf("plugin %s: metric %s declared twice", node, m.Name))
		case ReservedMetric(m.Name):
			panic(fmt.Sprintf("plugin %s: metric %s is reported by the runtime for every node; choose another name", node, m.Name))
		case strings.TrimSpace(m.Help) == "":
			panic(fmt.Sprintf("plugin %s: metric %s has no help", node, m.Name))
		case m.Gauge == strings.HasSuffix(m.Name, "_total"):
			panic(fmt.Sprintf("plugin %s: metric %s: counters end in _total and gauges do not", node, m.Name))
		case m.Gauge && m.Loss:
			panic(fmt.Sprintf("plugin %s: metric %s: a gauge cannot count losses", node, m.Name))
		}
		seen[m.Name] = true
	}
}

// Field documents one config key.
type Field struct {
	Key      string   `json:"key"`
	Type     string   `json:"type"`
	Default  any      `json:"default"`
	Required bool     `json:"required,omitempty"`
	Enum     []string `json:"enum,omitempty"`
	Doc      string   `json:"doc"`
	// Metadata from tags, Benthos-style: `example:"..."` (a value to show;
	// `|` separates several), `advanced:"true"` (tuning most graphs leave
	// alone: forms fold it away), `deprecated:"use X"` (still accepted,
	// warned about in docs), `secret:"true"` (may hold credentials: forms
	// use a password input, tools mask it).
	Examples   []string `json:"examples,omitempty"`
	Advanced   bool     `json:"advanced,omitempty"`
	Deprecated string   `json:"deprecated,omitempty"`
	Secret     bool     `json:"secret,omitempty"`
}

// Info is the type-erased view of a Spec.
type Info struct {
	Name        string       `json:"name"`
	Aliases     []string     `json:"aliases,omitempty"`
	Role        Role         `json:"role"`
	In          []string     `json:"input_kinds"`
	Out         []string     `json:"output_kinds"`
	InProfile   string       `json:"input_profile,omitempty"`
	OutProfile  string       `json:"output_profile,omitempty"`
	OutPorts    []string     `json:"output_ports,omitempty"`
	PortAware   bool         `json:"reads_input_ports,omitempty"`
	Commits     bool         `json:"commits,omitempty"`
	StdoutData  bool         `json:"stdout_data,omitempty"`
	Ignored     []string     `json:"ignored_keys,omitempty"`
	Summary     string       `json:"summary"`
	Description string       `json:"description,omitempty"`
	Stability   Stability    `json:"stability"`
	Fields      []Field      `json:"config"`
	Metrics     []MetricSpec `json:"metrics,omitempty"`
}

// Entry is a registered node: its Info plus the typed decode and build.
type Entry struct {
	Info
	decode func(cfg *packet.Map) (any, []*FieldError, []*FieldError)
	build  func(cfg any, env Env) (any, error)
}

// Decode checks cfg against the config type: it returns the decoded config
// (opaque), warnings (unknown keys) and errors (wrong types, missing
// required keys, Validate failures). It constructs nothing.
func (e *Entry) Decode(cfg *packet.Map) (any, []*FieldError, []*FieldError) {
	return e.decode(cfg)
}

// Metric returns the declared metric called name.
func (e *Entry) Metric(name string) (MetricSpec, bool) {
	for _, m := range e.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return MetricSpec{}, false
}

// NewRawEntry is an entry for a node whose config this binary cannot type
// (a plugin resolved by a Fallback: a Python class takes any dict). Decode
// hands build the config map as written, with no warnings; info.Name must
// be a well-formed plugin string.
func NewRawEntry(info Info, build func(cfg *packet.Map, env Env) (any, error)) *Entry {
	if !pluginName.MatchString(info.Name) {
		panic(fmt.Sprintf("plugin: malformed name %q (want module.path:Name)", info.Name))
	}
	info.In, info.Out = normKinds(info.In), normKinds(info.Out)
	if info.Stability == "" {
		info.Stability = Experimental
	}
	return &Entry{
		Info: info,
		decode: func(cfg *packet.Map) (any, []*FieldError, []*FieldError) {
			return cfg, nil, nil
		},
		build: func(cfg any, env Env) (any, error) {
			m, _ := cfg.(*packet.Map)
			return build(m, env)
		},
	}
}

// Build constructs the node from a config returned by Decode.
func (e *Entry) Build(decoded any, env Env) (any, error) {
	env = env.withDefaults()
	env.counters = newCounters(e.Metrics)
	return e.build(decoded, env)
}

var pluginName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$`)

func (s Spec[C]) entry() *Entry {
	check := func(n string) {
		if !pluginName.MatchString(n) {
			panic(fmt.Sprintf("plugin: malformed name %q (want module.path:Name)", n))
		}
	}
	check(s.Name)
	for _, a := range s.Aliases {
		check(a)
	}
	switch s.Role {
	case RoleSource, RoleNode, RoleSink:
	default:
		panic(fmt.Sprintf("plugin %s: unknown role %q", s.Name, s.Role))
	}
	newFn := s.constructor()
	checkMetrics(s.Name, s.Metrics)
	if s.Stability == "" {
		s.Stability = Stable
	}
	ct := reflect.TypeFor[C]()
	if ct.Kind() != reflect.Struct {
		panic(fmt.Sprintf("plugin %s: config type %s is not a struct", s.Name, ct))
	}
	fields := describe(ct, reflect.ValueOf(s.Defaults), "")
	defaults := s.Defaults
	e := &Entry{
		Info: Info{
			Name: s.Name, Aliases: s.Aliases, Role: s.Role,
			In: normKinds(s.In), Out: normKinds(s.Out), OutPorts: s.OutPorts, PortAware: s.PortAware, Commits: s.Commits, StdoutData: s.StdoutData,
			InProfile: s.InProfile, OutProfile: outProfile(s.Out, s.OutProfile),
			Summary: s.Summary, Description: strings.TrimSpace(s.Description),
			Stability: s.Stability, Fields: fields, Metrics: s.Metrics, Ignored: s.Ignored,
		},
	}
	e.decode = func(cfg *packet.Map) (any, []*FieldError, []*FieldError) {
		c := defaults
		d := decoder{}
		d.decodeStruct(reflect.ValueOf(&c).Elem(), cfg, "")
		// Validate runs even after decode errors, so that type, range and
		// enum errors come in one pass; a key that failed to decode kept
		// its default, so what Validate says about it is dropped.
		if v, ok := any(&c).(interface{ Validate() error }); ok {
			bad := map[string]bool{}
			for _, fe := range d.errs {
				bad[fe.Path] = true
			}
			for _, fe := range fieldErrors(v.Validate()) {
				if !bad[fe.Path] || fe.Path == "" && len(d.errs) == 0 {
					d.errs = append(d.errs, fe)
				}
			}
		}
		if len(s.Ignored) > 0 {
			errs := d.errs[:0:0]
			for _, fe := range d.errs {
				if slices.Contains(s.Ignored, fe.Path) {
					d.warns = append(d.warns, Errorf(fe.Path, "unknown key %q (ignored: accepted for upstream's graph files, unused by this node)", fe.Path))
					continue
				}
				errs = append(errs, fe)
			}
			d.errs = errs
		}
		return c, d.warns, d.errs
	}
	e.build = func(cfg any, env Env) (any, error) {
		n, err := newFn(cfg.(C), env)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	return e
}

// constructor checks that exactly one constructor is set, and that a typed
// one fits the role, and returns it as an untyped one.
func (s Spec[C]) constructor() func(C, Env) (any, error) {
	var fns []func(C, Env) (any, error)
	var want Role
	if s.NewSource != nil {
		want = RoleSource
		fns = append(fns, func(c C, env Env) (any, error) { return untyped(s.NewSource(c, env)) })
	}
	if s.NewProcessor != nil {
		want = RoleNode
		fns = append(fns, func(c C, env Env) (any, error) { return untyped(s.NewProcessor(c, env)) })
	}
	if s.NewBatchProcessor != nil {
		want = RoleNode
		fns = append(fns, func(c C, env Env) (any, error) { return untyped(s.NewBatchProcessor(c, env)) })
	}
	if s.New != nil {
		want = s.Role
		fns = append(fns, s.New)
	}
	switch {
	case len(fns) == 0:
		panic(fmt.Sprintf("plugin %s: no constructor", s.Name))
	case len(fns) > 1:
		panic(fmt.Sprintf("plugin %s: set one of New, NewSource, NewProcessor, NewBatchProcessor", s.Name))
	case (want == RoleSource) != (s.Role == RoleSource):
		panic(fmt.Sprintf("plugin %s: role %s does not match its constructor (NewSource is for sources, NewProcessor and NewBatchProcessor for nodes and sinks)", s.Name, s.Role))
	}
	return fns[0]
}

// untyped drops a typed constructor's result to any, keeping a nil
// interface nil rather than a typed nil.
func untyped[T any](n T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Payload profiles (upstream's contracts/payload_profile.py at HEAD).
const (
	ProfileInproc = "inproc_any"    // in-process values (frames, bytes) allowed
	ProfileJSON   = "json_portable" // JSON-like all the way down
	ProfileRef    = "ref_portable"  // JSON with references to stored blobs
)

// ProfileAccepts reports whether packets of profile src may enter a node
// whose input profile is dst: inproc_any only into inproc_any,
// json_portable into inproc_any and json_portable, ref_portable anywhere.
func ProfileAccepts(src, dst string) bool {
	switch src {
	case ProfileInproc:
		return dst == ProfileInproc
	case ProfileJSON:
		return dst == ProfileInproc || dst == ProfileJSON
	}
	return true
}

// outProfile applies upstream's implicit rule: a node that declares
// frame or bytes among its (non-wildcard) output kinds emits inproc_any.
func outProfile(out []string, declared string) string {
	if declared != "" || Wildcard(out) {
		return declared
	}
	for _, k := range out {
		if k == "frame" || k == "bytes" {
			return ProfileInproc
		}
	}
	return ""
}

func normKinds(k []string) []string {
	if len(k) == 0 {
		return []string{"*"}
	}
	return k
}

// Wildcard reports whether a kind set accepts anything.
func Wildcard(kinds []string) bool {
	if len(kinds) == 0 {
		return true
	}
	for _, k := range kinds {
		if k == "*" || strings.TrimSpace(k) == "" {
			return true
		}
	}
	return false
}

// fieldErrors flattens what a config's Validate returned: one error, a
// FieldError, or several joined with errors.Join.
func fieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*FieldError
		for _, e := range j.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return []*FieldError{{Msg: err.Error()}}
}
