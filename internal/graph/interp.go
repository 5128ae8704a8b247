package graph

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// interpolator resolves OmegaConf-style ${...} expressions in a value tree:
// ${a.b} (another key from the root), ${oc.env:VAR} and
// ${oc.env:VAR,default}. A string that is exactly one expression takes the
// expression's type; otherwise the parts are joined as strings.
//
// Unlike OmegaConf, an oc.env default keeps its YAML type: ${oc.env:X,false}
// is the boolean false, not the string "False" (docs/compat.md).
//
// Resolution is bounded (Limits): every ${...} evaluated and every value it
// copies counts against MaxNodes, a chain of references may be MaxDepth
// long, a joined string MaxScalarBytes and all joined strings together
// MaxFileBytes, so "x1: ${x0}${x0}, x2: ${x1}${x1}, ..." stops after
// MaxNodes steps instead of doubling forty times.
type interpolator struct {
	root   any
	getenv func(string) (string, bool)
	active map[string]bool // paths being resolved, to catch ${a} -> ${a}
	// final holds the paths of strings already resolved in place: their
	// value is a result (an env value, an escaped \${...}) and is never
	// interpolated again when something refers to it.
	final map[string]bool
	errs  []pathErr

	lim    Limits
	evals  int   // values resolved so far
	joined int64 // bytes of joined strings so far
	chain  int   // references being followed
	// over is set once a limit is hit: one error says so and the rest of
	// the tree is left unresolved.
	over bool
	// index holds the keys of large mappings: packet.Map looks keys up
	// linearly, and MaxNodes references into a mapping of many keys would
	// be quadratic. Keys do not change while resolving.
	index map[*packet.Map]map[string]int
}

func (ip *interpolator) get(m *packet.Map, key string) (any, bool) {
	if m.Len() <= 32 {
		return m.Get(key)
	}
	idx, ok := ip.index[m]
	if !ok {
		if ip.index == nil {
			ip.index = map[*packet.Map]map[string]int{}
		}
		idx = make(map[string]int, m.Len())
		for i, e := range m.Entries() {
			if _, dup := idx[e.Key]; !dup {
				idx[e.Key] = i
			}
		}
		ip.index[m] = idx
	}
	i, ok := idx[key]
	if !ok {
		return nil, false
	}
	return m.Entries()[i].Value, true
}

// errOver marks a limit error from deep inside a resolution.
type errOver struct{ msg string }

func (e *errOver) Error() string { return e.msg }

type pathErr struct {
	path string
	msg  string
}

func (ip *interpolator) resolveTree(v any, path string) any {
	switch x := v.(type) {
	case *packet.Map:
		for i, e := range x.Entries() {
			x.Entries()[i].Value = ip.resolveTree(e.Value, childPath(path, e.Key))
		}
		return x
	case []any:
		for i := range x {
			x[i] = ip.resolveTree(x[i], fmt.Sprintf("%s[%d]", path, i))
		}
		return x
	case string:
		if ip.over || !strings.Contains(x, "${") || ip.final[path] {
			return x
		}
		out, err := ip.resolveString(x, path)
		if ip.final == nil {
			ip.final = map[string]bool{}
		}
		ip.final[path] = true // resolved, or its error recorded once
		if err != nil {
			var over *errOver
			if errors.As(err, &over) {
				ip.over = true
				err = over
			}
			ip.errs = append(ip.errs, pathErr{path, err.Error()})
			return x
		}
		return out
	}
	return v
}

func (ip *interpolator) charge(nodes int) error {
	ip.evals += nodes
	if ip.evals > ip.lim.MaxNodes {
		return &errOver{tooManyNodes("interpolations resolve to", ip.lim.MaxNodes)}
	}
	return nil
}

// resolveString evaluates the expressions in s.
func (ip *interpolator) resolveString(s, path string) (any, error) {
	if ip.active[path] {
		return nil, fmt.Errorf("interpolation cycle through %q", path)
	}
	if ip.chain >= ip.lim.MaxDepth {
		return nil, &errOver{fmt.Sprintf("interpolations refer through more than the limit of %d levels; raise it with %s", ip.lim.MaxDepth, knobDepth)}
	}
	ip.active[path] = true
	ip.chain++
	defer func() { delete(ip.active, path); ip.chain-- }()

	var parts []any
	var lit strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], `\${`) {
			lit.WriteString("${")
			i += 3
			continue
		}
		if strings.HasPrefix(s[i:], "${") {
			end, err := matchBrace(s, i+2)
			if err != nil {
				return nil, fmt.Errorf("%v in %q", err, s)
			}
			v, err := ip.eval(s[i+2:end], path)
			if err != nil {
				return nil, err
			}
			if lit.Len() > 0 {
				parts = append(parts, lit.String())
				lit.Reset()
			}
			parts = append(parts, v)
			i = end + 1
			continue
		}
		lit.WriteByte(s[i])
		i++
	}
	if lit.Len() > 0 {
		parts = append(parts, lit.String())
	}
	if len(parts) == 1 {
		return parts[0], nil // one expression keeps its type
	}
	// Measure before joining: a part may be a large collection, and many
	// parts of a large string would build a huge one.
	size := 0
	for _, p := range parts {
		size += textSize(p, ip.lim.MaxScalarBytes-size+1)
		if size > ip.lim.MaxScalarBytes {
			return nil, &errOver{scalarTooBig("an interpolated string is", ip.lim.MaxScalarBytes)}
		}
	}
	ip.joined += int64(size)
	if ip.joined > ip.lim.MaxFileBytes {
		return nil, &errOver{fmt.Sprintf("interpolations build more than the limit of %s of text; raise it with %s", sizeStr(ip.lim.MaxFileBytes), knobBytes)}
	}
	var b strings.Builder
	b.Grow(size)
	for _, p := range parts {
		b.WriteString(packet.PyStr(p))
	}
	return b.String(), nil
}

// textSize is a lower bound of len(packet.PyStr(v)) that is exact for
// scalars and stops counting past limit.
func textSize(v any, limit int) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case *packet.Map:
		n := 2
		for _, e := range x.Entries() {
			if n > limit {
				break
			}
			n += len(e.Key) + 4 + textSize(e.Value, limit-n)
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			if n > limit {
				break
			}
			n += 2 + textSize(e, limit-n)
		}
		return n
	}
	return len(packet.PyStr(v))
}

// countValues counts the values in v (1 for a scalar) and its nesting
// depth (0 for a scalar), stopping past limit values.
func countValues(v any, limit int) (int, int) {
	n, depth := 1, 0
	switch x := v.(type) {
	case *packet.Map:
		depth = 1
		for _, e := range x.Entries() {
			if n > limit {
				break
			}
			c, d := countValues(e.Value, limit-n)
			n += 1 + c
			depth = max(depth, 1+d)
		}
	case []any:
		depth = 1
		for _, e := range x {
			if n > limit {
				break
			}
			c, d := countValues(e, limit-n)
			n += c
			depth = max(depth, 1+d)
		}
	}
	return n, depth
}

// matchBrace returns the index of the } closing the ${ that opened before
// start, allowing nested ${...}.
func matchBrace(s string, start int) (int, error) {
	depth := 1
	for i := start; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}':
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed ${")
}

func (ip *interpolator) eval(expr, path string) (any, error) {
	if err := ip.charge(1); err != nil {
		return nil, err
	}
	expr = strings.TrimSpace(expr)
	if name, args, ok := strings.Cut(expr, ":"); ok && isResolverName(name) {
		switch name {
		case "oc.env":
			return ip.env(args, path)
		default:
			return nil, fmt.Errorf("unsupported resolver %q in ${%s} (supported: oc.env)", name, expr)
		}
	}
	if expr == "" {
		return nil, fmt.Errorf("empty interpolation ${}")
	}
	return ip.ref(expr, path)
}

func isResolverName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (ip *interpolator) env(args, path string) (any, error) {
	name, def, hasDef := splitTopComma(args)
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, fmt.Errorf("${oc.env:} needs a variable name")
	}
	if v, ok := ip.getenv(name); ok {
		return v, nil
	}
	if !hasDef {
		return nil, fmt.Errorf("environment variable %q is not set (interpolation ${oc.env:%s}); set it or give a default: ${oc.env:%s,default}", name, name, name)
	}
	def = strings.TrimSpace(def)
	if def == "" {
		return "", nil // OmegaConf: an empty default is the empty string
	}
	if len(def) >= 2 && (def[0] == '\'' || def[0] == '"') && def[len(def)-1] == def[0] {
		return def[1 : len(def)-1], nil
	}
	if strings.Contains(def, "${") {
		return ip.resolveString(def, path+"<default>")
	}
	return resolvePlain(def), nil
}

// splitTopComma splits at the first comma outside ${...} and quotes.
func splitTopComma(s string) (string, string, bool) {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case c == '}':
			depth--
		case c == ',' && depth == 0:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// ref looks up a dotted path (a.b, a.list[0], a.list.0) from the root.
func (ip *interpolator) ref(expr, path string) (any, error) {
	var cur any = ip.root
	curPath := ""
	for _, seg := range splitRef(expr) {
		switch x := cur.(type) {
		case *packet.Map:
			v, ok := ip.get(x, seg)
			if !ok {
				return nil, fmt.Errorf("interpolation key %q not found (in ${%s})", seg, expr)
			}
			cur, curPath = v, childPath(curPath, seg)
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("interpolation index %q out of range (in ${%s})", seg, expr)
			}
			cur, curPath = x[i], fmt.Sprintf("%s[%d]", curPath, i)
		default:
			return nil, fmt.Errorf("interpolation key %q not found (in ${%s})", seg, expr)
		}
	}
	switch x := cur.(type) {
	case string:
		if strings.Contains(x, "${") && !ip.final[curPath] {
			return ip.resolveString(x, curPath)
		}
	case *packet.Map, []any:
		// Resolve the referenced collection in place before copying it, as
		// OmegaConf does: a reference to a key later in the file must not
		// copy its ${...} unresolved (nor re-interpolate an earlier result).
		// Once: walking it again for every reference would cost its size
		// each time, uncharged.
		if !ip.final[curPath] {
			before := len(ip.errs)
			ip.resolveTree(x, curPath)
			if ip.final == nil {
				ip.final = map[string]bool{}
			}
			ip.final[curPath] = true
			if len(ip.errs) > before {
				// Copying it would spread its unresolved ${...} to new
				// paths, each failing again.
				return nil, fmt.Errorf("${%s} refers to a value whose interpolation failed (reported at its line)", expr)
			}
		}
	}
	n, depth := countValues(cur, ip.lim.MaxNodes-ip.evals+1)
	if err := ip.charge(n - 1); err != nil {
		return nil, err
	}
	// The copy lands at path, as deep as path is: nesting a reference in
	// a reference must not grow past MaxDepth either.
	if level := 1 + strings.Count(path, ".") + strings.Count(path, "["); level+depth > ip.lim.MaxDepth {
		return nil, &errOver{fmt.Sprintf("an interpolated value nests deeper than the limit of %d levels; raise it with %s", ip.lim.MaxDepth, knobDepth)}
	}
	return packet.DeepCopy(cur), nil
}

func splitRef(expr string) []string {
	expr = strings.ReplaceAll(expr, "[", ".")
	expr = strings.ReplaceAll(expr, "]", "")
	var out []string
	for _, s := range strings.Split(expr, ".") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
