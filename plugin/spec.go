package plugin

import (
	"fmt"
	"reflect"
	"regexp"
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
	Summary               string   // one line
	Description           string   // paragraphs, markdown
	Stability             Stability
	Defaults              C
	New                   func(cfg C, env Env) (any, error) // returns a Source or a Processor
}

// Field documents one config key.
type Field struct {
	Key      string   `json:"key"`
	Type     string   `json:"type"`
	Default  any      `json:"default"`
	Required bool     `json:"required,omitempty"`
	Enum     []string `json:"enum,omitempty"`
	Doc      string   `json:"doc"`
}

// Info is the type-erased view of a Spec.
type Info struct {
	Name        string    `json:"name"`
	Aliases     []string  `json:"aliases,omitempty"`
	Role        Role      `json:"role"`
	In          []string  `json:"input_kinds"`
	Out         []string  `json:"output_kinds"`
	InProfile   string    `json:"input_profile,omitempty"`
	OutProfile  string    `json:"output_profile,omitempty"`
	OutPorts    []string  `json:"output_ports,omitempty"`
	Summary     string    `json:"summary"`
	Description string    `json:"description,omitempty"`
	Stability   Stability `json:"stability"`
	Fields      []Field   `json:"config"`
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

// Build constructs the node from a config returned by Decode.
func (e *Entry) Build(decoded any, env Env) (any, error) {
	return e.build(decoded, env.withDefaults())
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
	if s.New == nil {
		panic(fmt.Sprintf("plugin %s: no constructor", s.Name))
	}
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
			In: normKinds(s.In), Out: normKinds(s.Out), OutPorts: s.OutPorts,
			InProfile: s.InProfile, OutProfile: outProfile(s.Out, s.OutProfile),
			Summary: s.Summary, Description: strings.TrimSpace(s.Description),
			Stability: s.Stability, Fields: fields,
		},
	}
	e.decode = func(cfg *packet.Map) (any, []*FieldError, []*FieldError) {
		c := defaults
		d := decoder{}
		d.decodeStruct(reflect.ValueOf(&c).Elem(), cfg, "")
		if len(d.errs) == 0 {
			if v, ok := any(&c).(interface{ Validate() error }); ok {
				if err := v.Validate(); err != nil {
					if fe, ok := err.(*FieldError); ok {
						d.errs = append(d.errs, fe)
					} else {
						d.errs = append(d.errs, &FieldError{Msg: err.Error()})
					}
				}
			}
		}
		return c, d.warns, d.errs
	}
	e.build = func(cfg any, env Env) (any, error) {
		n, err := s.New(cfg.(C), env)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	return e
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
