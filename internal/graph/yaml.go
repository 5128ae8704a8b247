package graph

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// doc is a parsed YAML document: JSON-like values plus the position of
// every value, keyed by path ("nodes[0].config.packets[1].kind").
type doc struct {
	root    any
	pos     map[string]Pos
	anchors map[*yaml.Node]any // converted anchored values, for their aliases
	errs    []posErr
}

type posErr struct {
	pos Pos
	msg string
}

// parseYAML reads YAML with OmegaConf's scalar rules (YAML 1.1 as patched
// by OmegaConf) and keeps positions. data has passed checkText; the limits
// are checked on the raw text (prescan) before the YAML library parses it
// and on the parsed tree (measure) before aliases are expanded.
//
// The library parses into yaml.Node, where an alias is a pointer to its
// anchor's node: parsing costs what the file holds, not what it expands to
// (go.yaml.in/yaml/v3; goccy/go-yaml's parser is quadratic in the number of
// keys of a block mapping and recurses once per key).
func parseYAML(data []byte, lim Limits) (*doc, error) {
	if err := prescan(data, lim); err != nil {
		return nil, err
	}
	d := &doc{pos: map[string]Pos{}, anchors: map[*yaml.Node]any{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var top yaml.Node
	if err := dec.Decode(&top); err != nil {
		if errors.Is(err, io.EOF) {
			return d, nil // empty, or only comments
		}
		return nil, yamlSyntaxError(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.errs = append(d.errs, posErr{posOf(&next), "more than one YAML document in the file"})
	case !errors.Is(err, io.EOF):
		return nil, yamlSyntaxError(err, data)
	}
	body := &top
	if top.Kind == yaml.DocumentNode {
		if len(top.Content) == 0 {
			return d, nil
		}
		body = top.Content[0]
	}
	if err := measure(body, lim); err != nil {
		return nil, err
	}
	d.root = d.value(body, "")
	return d, nil
}

// syntaxError is a YAML syntax error with its line.
type syntaxError struct {
	pos Pos
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

var (
	reErrLine      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	reUnknownAlias = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// parserError reports whether msg is one of libyaml's parser (not
// scanner) errors, the ones yaml.v3 numbers from 0.
func parserError(msg string) bool {
	for _, p := range []string{"did not find expected", "found incompatible YAML document", "found duplicate %", "found undefined tag handle"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func yamlSyntaxError(err error, data []byte) error {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if m := reErrLine.FindStringSubmatch(msg); m != nil {
		l, _ := strconv.Atoi(m[1])
		if parserError(m[2]) {
			// yaml.v3 prints a parser error's mark 0-based (its scanner
			// errors are 1-based): "plugin: [unclosed" on line 4 comes
			// back as "line 3".
			l++
		}
		return &syntaxError{pos: Pos{Line: l}, msg: "invalid YAML: " + m[2]}
	}
	if m := reUnknownAlias.FindStringSubmatch(msg); m != nil {
		// The library does not say where: the first *name is.
		line := 1
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line += bytes.Count(data[:i], []byte("\n"))
		}
		return &syntaxError{pos: Pos{Line: line}, msg: fmt.Sprintf("invalid YAML: unknown alias *%s (no anchor &%s before it)", m[1], m[1])}
	}
	return &syntaxError{pos: Pos{Line: 1}, msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func posOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{n.Line, n.Column}
}

func (d *doc) errf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, posErr{posOf(n), fmt.Sprintf(format, args...)})
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// explicitTag returns the tag written in the file ("!!str"), if any.
func explicitTag(n *yaml.Node) string {
	if n.Style&yaml.TaggedStyle != 0 {
		return n.Tag
	}
	return ""
}

func (d *doc) value(n *yaml.Node, path string) any {
	p := posOf(n)
	if _, seen := d.pos[path]; !seen || path == "" {
		d.pos[path] = p
	}
	if n.Kind == yaml.AliasNode {
		v, ok := d.anchors[n.Alias]
		if !ok {
			d.errf(n, "alias *%s refers to the value that holds it", n.Value)
			return nil
		}
		return packet.DeepCopy(v)
	}
	switch tag := explicitTag(n); tag {
	case "", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
	case "!!str":
		if n.Kind == yaml.ScalarNode {
			return d.anchor(n, n.Value)
		}
		d.errf(n, "YAML tag !!str on a collection")
		return nil
	default:
		d.errf(n, "unsupported YAML tag %s", tag)
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return d.value(n.Content[0], path)
	case yaml.MappingNode:
		m := packet.NewMap(len(n.Content) / 2)
		d.mapping(m, n, path)
		return d.anchor(n, m)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, v := range n.Content {
			out[i] = d.value(v, fmt.Sprintf("%s[%d]", path, i))
		}
		return d.anchor(n, out)
	case yaml.ScalarNode:
		switch n.Style &^ yaml.TaggedStyle {
		case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle, yaml.LiteralStyle, yaml.FoldedStyle:
			return d.anchor(n, n.Value)
		}
		return d.anchor(n, resolvePlain(n.Value))
	}
	return nil
}

// anchor remembers the value of an anchored node for its aliases.
func (d *doc) anchor(n *yaml.Node, v any) any {
	if n.Anchor != "" {
		d.anchors[n] = v
	}
	return v
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Tag == "!!merge" && k.Style&^yaml.TaggedStyle == 0
}

func (d *doc) mapping(m *packet.Map, n *yaml.Node, path string) {
	// Keys are indexed here: packet.Map looks keys up linearly, which
	// would make a mapping of many keys quadratic.
	seen := make(map[string]bool, len(n.Content)/2)    // in m
	written := make(map[string]bool, len(n.Content)/2) // written as keys here
	set := func(key string, v any) {
		if !seen[key] {
			seen[key] = true
			m.AppendNew(key, v)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			src := d.value(v, path+".<<")
			merge := func(x any) {
				if sm, ok := x.(*packet.Map); ok {
					for _, e := range sm.Entries() {
						set(e.Key, e.Value) // keys written before << win
					}
				} else {
					d.errf(v, "merge key << needs a mapping")
				}
			}
			if list, ok := src.([]any); ok {
				for _, x := range list {
					merge(x)
				}
			} else {
				merge(src)
			}
			continue
		}
		key := packet.PyStr(d.value(k, path+".<key>"))
		if written[key] {
			d.errf(k, "duplicate key %q", key)
		}
		written[key] = true
		cp := childPath(path, key)
		d.pos[cp] = posOf(k)
		val := d.value(v, cp)
		d.pos[cp] = posOf(k) // a key's line is where the key is written
		if seen[key] {
			m.Set(key, val) // a written key beats a merged one
		} else {
			set(key, val)
		}
	}
}

// YAML 1.1 plain-scalar resolution as OmegaConf configures PyYAML: bools
// include yes/no/on/off, ints include octal 010 and sexagesimal, floats
// accept 1e3 without a dot, timestamps stay strings.
var (
	reInt   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	reFloat = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
)

func resolvePlain(s string) any {
	switch strings.ToLower(s) {
	case "", "~", "null":
		if s == "" || s == "~" || s == "null" || s == "Null" || s == "NULL" {
			return nil
		}
	case "yes", "true", "on":
		return true
	case "no", "false", "off":
		return false
	}
	if reInt.MatchString(s) {
		if v, ok := parseInt11(s); ok {
			return v
		}
	}
	if reFloat.MatchString(s) {
		return parseFloat11(s)
	}
	return s
}

func parseInt11(s string) (any, bool) {
	t := strings.ReplaceAll(s, "_", "")
	sign := int64(1)
	if t != "" && (t[0] == '-' || t[0] == '+') {
		if t[0] == '-' {
			sign = -1
		}
		t = t[1:]
	}
	if strings.Contains(t, ":") { // sexagesimal: 1:30 = 90
		var n int64
		for _, part := range strings.Split(t, ":") {
			d, err := strconv.ParseInt(part, 10, 64)
			if err != nil {
				return nil, false
			}
			n = n*60 + d
		}
		return sign * n, true
	}
	base := 10
	switch {
	case strings.HasPrefix(t, "0b"):
		base, t = 2, t[2:]
	case strings.HasPrefix(t, "0x"):
		base, t = 16, t[2:]
	case len(t) > 1 && t[0] == '0':
		base, t = 8, t[1:]
	}
	if t == "" {
		return nil, false
	}
	b, ok := new(big.Int).SetString(t, base)
	if !ok {
		return nil, false
	}
	if sign < 0 {
		b.Neg(b)
	}
	if b.IsInt64() {
		return b.Int64(), true
	}
	return b, true
}

func parseFloat11(s string) any {
	t := strings.ReplaceAll(s, "_", "")
	lower := strings.ToLower(t)
	switch {
	case strings.HasSuffix(lower, ".inf"):
		if strings.HasPrefix(t, "-") {
			return math.Inf(-1)
		}
		return math.Inf(1)
	case lower == ".nan":
		return math.NaN()
	}
	if strings.Contains(t, ":") {
		sign := 1.0
		if t[0] == '-' || t[0] == '+' {
			if t[0] == '-' {
				sign = -1
			}
			t = t[1:]
		}
		var v float64
		for _, part := range strings.Split(t, ":") {
			f, _ := strconv.ParseFloat(part, 64)
			v = v*60 + f
		}
		return sign * v
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return s
	}
	return f
}
