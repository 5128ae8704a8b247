package plugin

import (
	"errors"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func TestResolveFallback(t *testing.T) {
	r := NewRegistry()
	type cfg struct{}
	Register(r, Spec[cfg]{Name: "a.b:Known", Role: RoleNode, Summary: "s", New: func(cfg, Env) (any, error) { return 1, nil }})
	var asked []string
	r.SetFallback(func(name, dir string) (*Entry, error) {
		asked = append(asked, name+"@"+dir)
		switch name {
		case "py.mod:Class":
			return NewRawEntry(Info{Name: name, Role: RoleNode}, func(c *packet.Map, _ Env) (any, error) { return c, nil }), nil
		case "py.mod:Broken":
			return nil, errors.New("raises at import")
		}
		return nil, nil
	})
	for _, tc := range []struct {
		name    string
		ok      bool
		wantErr bool
	}{
		{"a.b:Known", true, false},
		{"py.mod:Class", true, false},
		{"py.mod:Broken", false, true},
		{"py.mod:Other", false, false},
	} {
		e, ok, err := r.Resolve(tc.name, "/g")
		if ok != tc.ok || (err != nil) != tc.wantErr || ok && e.Name != tc.name {
			t.Errorf("%s: ok=%v err=%v entry=%v", tc.name, ok, err, e)
		}
	}
	if len(asked) != 3 || asked[0] != "py.mod:Class@/g" {
		t.Errorf("the fallback was asked %v: only for unregistered names, with the graph's dir", asked)
	}
	if len(r.Entries()) != 1 {
		t.Errorf("fallback entries must not be listed: %d entries", len(r.Entries()))
	}
	// A raw entry hands the config map through untouched, with no warnings.
	e, _, _ := r.Resolve("py.mod:Class", "")
	m := packet.MapOf("anything", int64(1))
	dec, warns, errs := e.Decode(m)
	if len(warns)+len(errs) != 0 {
		t.Fatalf("raw decode: %v %v", warns, errs)
	}
	if n, err := e.Build(dec, Env{}); err != nil || n != m {
		t.Fatalf("raw build: %v %v", n, err)
	}
	if e.In[0] != "*" || e.Stability != Experimental {
		t.Errorf("raw entry defaults: %+v", e.Info)
	}
}
