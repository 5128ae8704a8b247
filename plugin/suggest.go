package plugin

import (
	"fmt"
	"sort"
	"strings"
)

// Nearest returns the entries of known that name is probably a typo of:
// the closest ones (at most three): equal ignoring case, within a small edit
// distance, or a prefix of at least three characters.
func Nearest(name string, known []string) []string {
	type cand struct {
		s string
		d int
	}
	low := strings.ToLower(name)
	limit := 1
	if len(name) >= 4 {
		limit = 2
	}
	if len(name) >= 9 {
		limit = 3
	}
	var cs []cand
	for _, k := range known {
		kl := strings.ToLower(k)
		d := osaDistance(low, kl)
		switch {
		case k == name:
			continue
		case d <= limit:
		case len(low) >= 3 && (strings.HasPrefix(kl, low) || strings.HasPrefix(low, kl) && len(kl) >= 3):
			d = limit + 1
		default:
			continue
		}
		cs = append(cs, cand{k, d})
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].s < cs[j].s
	})
	var out []string
	for _, c := range cs {
		if len(out) == 3 || c.d > cs[0].d { // only the closest
			break
		}
		out = append(out, c.s)
	}
	return out
}

// DidYouMean formats Nearest as ` (did you mean "a" or "b"?)`, or "".
func DidYouMean(name string, known []string) string {
	near := Nearest(name, known)
	if len(near) == 0 {
		return ""
	}
	q := make([]string, len(near))
	for i, n := range near {
		q[i] = fmt.Sprintf("%q", n)
	}
	return " (did you mean " + strings.Join(q, " or ") + "?)"
}

// osaDistance is the edit distance counting a swap of two adjacent
// characters as one edit (jbo -> job), the commonest typo.
func osaDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
