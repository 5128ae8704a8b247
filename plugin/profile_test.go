package plugin

import "testing"

func TestProfileAccepts(t *testing.T) {
	all := []string{ProfileInproc, ProfileJSON, ProfileRef}
	want := map[string][]string{ // upstream's _PROFILE_COMPAT
		ProfileInproc: {ProfileInproc},
		ProfileJSON:   {ProfileInproc, ProfileJSON},
		ProfileRef:    {ProfileInproc, ProfileJSON, ProfileRef},
	}
	for _, src := range all {
		for _, dst := range all {
			ok := false
			for _, w := range want[src] {
				ok = ok || w == dst
			}
			if got := ProfileAccepts(src, dst); got != ok {
				t.Errorf("%s -> %s: %v, want %v", src, dst, got, ok)
			}
		}
	}
}

func TestOutProfileImplicit(t *testing.T) {
	cases := []struct {
		out      []string
		declared string
		want     string
	}{
		{[]string{"frame"}, "", ProfileInproc},
		{[]string{"event", "bytes"}, "", ProfileInproc},
		{[]string{"event"}, "", ""},
		{[]string{"*", "frame"}, "", ""}, // a wildcard declares nothing
		{nil, "", ""},
		{[]string{"frame"}, ProfileRef, ProfileRef}, // declared wins
	}
	for _, c := range cases {
		if got := outProfile(c.out, c.declared); got != c.want {
			t.Errorf("outProfile(%v, %q) = %q, want %q", c.out, c.declared, got, c.want)
		}
	}
}
