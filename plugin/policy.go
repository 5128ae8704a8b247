package plugin

import (
	"fmt"
	"strings"
)

// DefaultPrefixes are the module prefixes allowed when
// ALLOWED_PLUGIN_PREFIXES is unset (the seed's defaults).
var DefaultPrefixes = []string{"schnitzel_stream.", "ai."}

// Policy is the plugin allowlist. It is checked against the module part of a
// plugin string (before the colon), before anything is looked up.
type Policy struct {
	AllowAll bool
	Prefixes []string
}

// PolicyFromEnv reads ALLOWED_PLUGIN_PREFIXES (comma-separated; when set it
// replaces the defaults, as upstream) and ALLOW_ALL_PLUGINS (1/true/yes).
func PolicyFromEnv(getenv func(string) string) Policy {
	p := Policy{Prefixes: DefaultPrefixes}
	switch strings.ToLower(strings.TrimSpace(getenv("ALLOW_ALL_PLUGINS"))) {
	case "1", "true", "yes":
		p.AllowAll = true
	}
	if raw, set := lookup(getenv, "ALLOWED_PLUGIN_PREFIXES"); set {
		var pre []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				pre = append(pre, s)
			}
		}
		if len(pre) > 0 {
			p.Prefixes = pre
		}
	}
	return p
}

func lookup(getenv func(string) string, k string) (string, bool) {
	v := getenv(k)
	return v, strings.TrimSpace(v) != ""
}

// Allowed reports whether the plugin string's module may be loaded.
//
// A prefix that ends in "." matches as a plain prefix (upstream). A prefix
// without the dot matches only whole module segments: "acme" allows "acme"
// and "acme.x" but not "acmebad" (upstream's bare startswith over-matched;
// docs/compat.md).
func (p Policy) Allowed(plugin string) bool {
	if p.AllowAll {
		return true
	}
	module, _, _ := strings.Cut(plugin, ":")
	for _, pre := range p.Prefixes {
		if strings.HasSuffix(pre, ".") {
			if strings.HasPrefix(module, pre) {
				return true
			}
			continue
		}
		if module == pre || strings.HasPrefix(module, pre+".") {
			return true
		}
	}
	return false
}

// Check explains why plugin may not be loaded, or returns nil. It names the
// whole plugin string as written and the prefixes in force (upstream's
// PermissionError names only the module: docs/compat.md).
func (p Policy) Check(plugin string) error {
	if p.Allowed(plugin) {
		return nil
	}
	module, _, _ := strings.Cut(plugin, ":")
	return fmt.Errorf("plugin %q is not allowed: module %q is not under ALLOWED_PLUGIN_PREFIXES (%s); add its prefix there, or set ALLOW_ALL_PLUGINS=true for dev-only use",
		plugin, module, strings.Join(p.Prefixes, ","))
}
