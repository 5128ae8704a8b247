package plugin

import (
	"fmt"
	"sort"
	"strings"
)

// Registry maps plugin strings (names and aliases) to entries. It is a
// value, not global state: a binary builds one from the node packages it
// imports, and tests build their own.
type Registry struct {
	byName  map[string]*Entry
	entries []*Entry
	jobs    map[string]*JobSpec
	// fallback resolves names nothing registered (SetFallback).
	fallback Fallback
}

// Fallback resolves a plugin string that is not registered: a node
// package that runs plugins outside the binary (nodes/exec: a Python class)
// returns an entry for it. dir is the graph file's directory (where such a
// plugin may live). (nil, nil) means "not mine": the name stays unknown.
// An error says why the name cannot be loaded (the class does not exist,
// its module raises at import); the validator reports it on the plugin.
// It is consulted only for names the allowlist already admitted.
type Fallback func(name, dir string) (*Entry, error)

// SetFallback installs f (nil removes it); the last call wins.
func (r *Registry) SetFallback(f Fallback) { r.fallback = f }

// Resolve is Lookup, then the fallback for a name nothing registered.
// Entries from the fallback are not listed by Entries.
func (r *Registry) Resolve(name, dir string) (*Entry, bool, error) {
	if e, ok := r.byName[name]; ok {
		return e, true, nil
	}
	if r.fallback == nil {
		return nil, false, nil
	}
	e, err := r.fallback(name, dir)
	if err != nil || e == nil {
		return nil, false, err
	}
	return e, true, nil
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byName: map[string]*Entry{}} }

// Register adds a node spec. It panics on a malformed spec or a name or
// alias that is already taken: both are programming errors.
func Register[C any](r *Registry, s Spec[C]) {
	e := s.entry()
	for _, n := range append([]string{e.Name}, e.Aliases...) {
		if _, dup := r.byName[n]; dup {
			panic(fmt.Sprintf("plugin: %s registered twice", n))
		}
		r.byName[n] = e
	}
	r.entries = append(r.entries, e)
}

// Lookup finds an entry by name or alias.
func (r *Registry) Lookup(name string) (*Entry, bool) {
	e, ok := r.byName[name]
	return e, ok
}

// Entries returns every entry, sorted by name.
func (r *Registry) Entries() []*Entry {
	out := append([]*Entry(nil), r.entries...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Suggest returns registered names close to name, for "did you mean".
func (r *Registry) Suggest(name string) []string {
	_, class, found := strings.Cut(name, ":")
	if !found {
		class = name // a bare class name: "Filter"
	}
	var out []string
	for n := range r.byName {
		_, c, _ := strings.Cut(n, ":")
		if strings.EqualFold(c, class) || levenshtein(strings.ToLower(n), strings.ToLower(name)) <= 3 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Clone returns a registry with the same entries, to which more can be
// added without touching r (test doubles for one run, say).
func (r *Registry) Clone() *Registry {
	c := &Registry{byName: make(map[string]*Entry, len(r.byName)), entries: append([]*Entry(nil), r.entries...)}
	for k, v := range r.byName {
		c.byName[k] = v
	}
	if r.jobs != nil {
		c.jobs = make(map[string]*JobSpec, len(r.jobs))
		for k, v := range r.jobs {
			c.jobs[k] = v
		}
	}
	return c
}
