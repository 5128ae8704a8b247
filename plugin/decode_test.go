package plugin

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

type inner struct {
	Mode string `yaml:"mode" enum:"a,b"`
}

type cfg struct {
	Name    string            `yaml:"name" required:"true" doc:"the name"`
	Count   int               `yaml:"count"`
	Ratio   float64           `yaml:"ratio"`
	On      bool              `yaml:"on"`
	Tags    []string          `yaml:"tags"`
	Headers map[string]string `yaml:"headers"`
	Raw     any               `yaml:"raw"`
	Obj     *packet.Map       `yaml:"obj"`
	Opt     *int              `yaml:"opt"`
	Inner   inner             `yaml:"inner"`
}

func (c *cfg) Validate() error {
	if c.Count < 0 {
		return Errorf("count", "must be >= 0")
	}
	return nil
}

func entry() *Entry {
	r := NewRegistry()
	Register(r, Spec[cfg]{
		Name: "schnitzel_stream.test:T", Role: RoleNode, Defaults: cfg{Count: 3, Inner: inner{Mode: "a"}},
		New: func(c cfg, _ Env) (any, error) { return c, nil },
	})
	e, _ := r.Lookup("schnitzel_stream.test:T")
	return e
}

func TestDecodeTypedWithDefaults(t *testing.T) {
	e := entry()
	in := packet.MapOf("name", "x", "ratio", int64(2), "on", "False", "tags", []any{"a", int64(1)},
		"headers", packet.MapOf("k", "v"), "raw", []any{true}, "obj", packet.MapOf("z", nil), "opt", "7",
		"inner", packet.MapOf("mode", "b"), "extra", int64(1))
	dec, warns, errs := e.Decode(in)
	// An unknown key is an error (a typo must not leave a default in force).
	if len(errs) != 1 || errs[0].Path != "extra" || !strings.Contains(errs[0].Msg, `unknown key "extra"`) {
		t.Fatal(errs)
	}
	c := dec.(cfg)
	if c.Name != "x" || c.Count != 3 || c.Ratio != 2 || c.On || strings.Join(c.Tags, ",") != "a,1" ||
		c.Headers["k"] != "v" || c.Obj.Len() != 1 || c.Opt == nil || *c.Opt != 7 || c.Inner.Mode != "b" {
		t.Errorf("decoded %+v", c)
	}
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
}

func TestDecodeErrorsAllReported(t *testing.T) {
	e := entry()
	in := packet.MapOf("count", "many", "ratio", "x", "on", "maybe", "tags", "notalist", "inner", packet.MapOf("mode", "c"))
	_, _, errs := e.Decode(in)
	var got []string
	for _, fe := range errs {
		got = append(got, fe.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`config.name: required key is missing`,
		`config.count: expected an integer, got the string "many"`,
		`config.ratio: expected a number, got the string "x"`,
		`config.on: expected a boolean (true/false), got the string "maybe"`,
		`config.tags: expected a list, got a string`,
		`config.inner.mode: must be one of a, b, got "c"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in\n%s", want, all)
		}
	}
	_, _, errs = e.Decode(packet.MapOf("name", "x", "count", int64(-1)))
	if len(errs) != 1 || errs[0].Error() != "config.count: must be >= 0" {
		t.Errorf("Validate: %v", errs)
	}
}

func TestSpecDocsFields(t *testing.T) {
	e := entry()
	var keys []string
	for _, f := range e.Fields {
		keys = append(keys, f.Key)
	}
	if strings.Join(keys, ",") != "name,count,ratio,on,tags,headers,raw,obj,opt,inner.mode" {
		t.Errorf("fields %v", keys)
	}
	if e.Fields[0].Doc != "the name" || !e.Fields[0].Required || e.Fields[1].Default != 3 {
		t.Errorf("field docs %+v %+v", e.Fields[0], e.Fields[1])
	}
}

func TestRegisterRejectsDuplicatesAndBadNames(t *testing.T) {
	for name, f := range map[string]func(){
		"duplicate": func() {
			r := NewRegistry()
			s := Spec[cfg]{Name: "a.b:C", Role: RoleNode, New: func(cfg, Env) (any, error) { return nil, nil }}
			Register(r, s)
			Register(r, s)
		},
		"malformed": func() {
			Register(NewRegistry(), Spec[cfg]{Name: "no colon", Role: RoleNode, New: func(cfg, Env) (any, error) { return nil, nil }})
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestDecodeOnePass(t *testing.T) {
	// A type error, a range error (Validate) and a typo come together.
	_, _, errs := entry().Decode(packet.MapOf("name", []any{}, "count", int64(-1), "cout", int64(1)))
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{`config.name: expected a string, got a list`, `config.cout: unknown key "cout" (did you mean "count"?)`, `config.count: must be >= 0`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

type transport struct {
	TimeoutSec float64 `yaml:"timeout_sec" doc:"per attempt"`
	Retries    int     `yaml:"retries" required:"true"`
}

type inlineCfg struct {
	transport `yaml:",inline"`
	Name      string `yaml:"name"`
}

// TestDecodeInline: an inline struct's keys are the outer config's keys,
// with their defaults, errors, required checks and docs.
func TestDecodeInline(t *testing.T) {
	r := NewRegistry()
	Register(r, Spec[inlineCfg]{
		Name: "schnitzel_stream.test:Inline", Role: RoleNode, Defaults: inlineCfg{transport: transport{TimeoutSec: 5}},
		New: func(c inlineCfg, _ Env) (any, error) { return c, nil },
	})
	e, _ := r.Lookup("schnitzel_stream.test:Inline")
	dec, _, errs := e.Decode(packet.MapOf("name", "n", "retries", int64(2)))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if c := dec.(inlineCfg); c.TimeoutSec != 5 || c.Retries != 2 || c.Name != "n" {
		t.Errorf("decoded %+v", c)
	}
	_, _, errs = e.Decode(packet.MapOf("timeout_sec", "soon", "transport", packet.MapOf()))
	var paths []string
	for _, fe := range errs {
		paths = append(paths, fe.Path)
	}
	if got := strings.Join(paths, " "); !strings.Contains(got, "timeout_sec") || !strings.Contains(got, "retries") || !strings.Contains(got, "transport") {
		t.Errorf("want errors for timeout_sec (bad value), retries (required) and transport (not a key), got %v", errs)
	}
	var keys []string
	for _, f := range e.Info.Fields {
		keys = append(keys, f.Key)
		if f.Key == "timeout_sec" && (f.Default != 5.0 || f.Doc != "per attempt") {
			t.Errorf("docs of an inline key: %+v", f)
		}
	}
	if strings.Join(keys, ",") != "timeout_sec,retries,name" {
		t.Errorf("documented keys %v", keys)
	}
}

func TestDecodeSeconds(t *testing.T) {
	type c struct {
		Wait Seconds `yaml:"wait"`
	}
	r := NewRegistry()
	Register(r, Spec[c]{Name: "schnitzel_stream.test:S", Role: RoleNode, Defaults: c{Wait: 1.5},
		New: func(c c, _ Env) (any, error) { return c, nil }})
	e, _ := r.Lookup("schnitzel_stream.test:S")
	for _, tc := range []struct {
		raw  any
		want time.Duration
		bad  string
	}{
		{int64(2), 2 * time.Second, ""},
		{0.25, 250 * time.Millisecond, ""},
		{"0.5", 500 * time.Millisecond, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1m30s", 90 * time.Second, ""},
		{int64(-1), -time.Second, ""}, // negative: the node decides (often "disabled")
		{"soon", 0, "expected a number of seconds"},
		{math.Inf(1), 0, "finite"},
		{math.NaN(), 0, "finite"},
		{1e12, time.Duration(math.MaxInt64), ""}, // saturates; each node checks its own range
		{true, 0, "expected a number of seconds"},
	} {
		dec, _, errs := e.Decode(packet.MapOf("wait", tc.raw))
		if tc.bad != "" {
			if len(errs) != 1 || !strings.Contains(errs[0].Msg, tc.bad) || errs[0].Path != "wait" {
				t.Errorf("%v: want an error with %q at wait, got %v", tc.raw, tc.bad, errs)
			}
			continue
		}
		if len(errs) != 0 {
			t.Errorf("%v: %v", tc.raw, errs)
			continue
		}
		if got := dec.(c).Wait.Duration(); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.raw, got, tc.want)
		}
	}
	if f := e.Info.Fields[0]; f.Type != "seconds" || f.Default != Seconds(1.5) {
		t.Errorf("documented as %+v", f)
	}
}

func TestFieldMetadata(t *testing.T) {
	type c struct {
		URL  string  `yaml:"url" secret:"true" example:"http://a|http://b" doc:"where"`
		Wait Seconds `yaml:"wait" advanced:"true" doc:"tuning"`
		Old  string  `yaml:"old" deprecated:"use url" doc:"legacy"`
	}
	r := NewRegistry()
	Register(r, Spec[c]{Name: "schnitzel_stream.test:Meta", Role: RoleNode, New: func(c c, _ Env) (any, error) { return c, nil }})
	e, _ := r.Lookup("schnitzel_stream.test:Meta")
	f := e.Info.Fields
	if !f[0].Secret || strings.Join(f[0].Examples, ",") != "http://a,http://b" || f[0].Advanced {
		t.Errorf("url: %+v", f[0])
	}
	if !f[1].Advanced || f[1].Secret {
		t.Errorf("wait: %+v", f[1])
	}
	if f[2].Deprecated != "use url" {
		t.Errorf("old: %+v", f[2])
	}
}
