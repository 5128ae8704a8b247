package plugin

import (
	"slices"
	"testing"
)

func TestNearest(t *testing.T) {
	known := []string{"count", "interval_sec", "kind", "source_id", "nodes", "edges", "version", "config"}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"cout", []string{"count"}},
		{"nodez", []string{"nodes"}},
		{"confg", []string{"config"}},
		{"intervall_sec", []string{"interval_sec"}},
		{"Kind", []string{"kind"}},
		{"interval", []string{"interval_sec"}},
		{"zzz", nil},
		{"cuont", []string{"count"}},
		{"knid", []string{"kind"}},
		{"count", nil},
	} {
		if got := Nearest(tc.in, known); !slices.Equal(got, tc.want) {
			t.Errorf("Nearest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := DidYouMean("edgs", known); got != ` (did you mean "edges"?)` {
		t.Errorf("DidYouMean = %q", got)
	}
}
