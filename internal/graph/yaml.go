package graph

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// doc is a parsed YAML document: JSON-like values plus the position of
// every value, keyed by path ("nodes[0].config.packets[1].kind").
type doc struct {
	root    any
	pos     map[string]Pos
	anchors map[string]any
	errs    []posErr
}

type posErr struct {
	pos Pos
	msg string
}

// parseYAML reads YAML with OmegaConf's scalar rules (YAML 1.1 as patched
// by OmegaConf) and keeps positions.
func parseYAML(data []byte) (*doc, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlSyntaxError(err)
	}
	d := &doc{pos: map[string]Pos{}, anchors: map[string]any{}}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return d, nil
	}
	if len(f.Docs) > 1 {
		d.errs = append(d.errs, posErr{posOf(f.Docs[1].Body), "more than one YAML document in the file"})
	}
	d.root = d.value(f.Docs[0].Body, "")
	return d, nil
}

// syntaxError is a YAML syntax error with its line.
type syntaxError struct {
	pos Pos
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

var lineCol = regexp.MustCompile(`^\[(\d+):(\d+)\]\s*(.*)$`)

func yamlSyntaxError(err error) error {
	// goccy errors print "[line:col] message" followed by a source excerpt.
	first, _, _ := strings.Cut(err.Error(), "\n")
	if m := lineCol.FindStringSubmatch(strings.TrimSpace(first)); m != nil {
		l, _ := strconv.Atoi(m[1])
		c, _ := strconv.Atoi(m[2])
		return &syntaxError{pos: Pos{l, c}, msg: "invalid YAML: " + m[3]}
	}
	return &syntaxError{msg: "invalid YAML: " + first}
}

func posOf(n ast.Node) Pos {
	if n == nil {
		return Pos{}
	}
	t := n.GetToken()
	if t == nil || t.Position == nil {
		return Pos{}
	}
	return Pos{t.Position.Line, t.Position.Column}
}

func (d *doc) errf(n ast.Node, format string, args ...any) {
	d.errs = append(d.errs, posErr{posOf(n), fmt.Sprintf(format, args...)})
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *doc) value(n ast.Node, path string) any {
	p := posOf(n)
	if _, seen := d.pos[path]; !seen || path == "" {
		d.pos[path] = p
	}
	switch x := n.(type) {
	case *ast.DocumentNode:
		return d.value(x.Body, path)
	case *ast.MappingNode:
		return d.mapping(x.Values, path)
	case *ast.MappingValueNode:
		return d.mapping([]*ast.MappingValueNode{x}, path)
	case *ast.SequenceNode:
		out := make([]any, 0, len(x.Values))
		for i, v := range x.Values {
			out = append(out, d.value(v, fmt.Sprintf("%s[%d]", path, i)))
		}
		return out
	case *ast.AnchorNode:
		v := d.value(x.Value, path)
		d.anchors[x.Name.GetToken().Value] = v
		return v
	case *ast.AliasNode:
		name := x.Value.GetToken().Value
		v, ok := d.anchors[name]
		if !ok {
			d.errf(x, "unknown alias *%s", name)
		}
		return packet.DeepCopy(v)
	case *ast.TagNode:
		tag := x.Start.Value
		switch tag {
		case "!!str":
			return rawText(x.Value)
		case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
			return d.value(x.Value, path)
		default:
			d.errf(x, "unsupported YAML tag %s", tag)
			return nil
		}
	case *ast.LiteralNode:
		return x.Value.Value
	case *ast.NullNode:
		return nil
	case *ast.CommentNode, nil:
		return nil
	}
	t := n.GetToken()
	if t == nil {
		return nil
	}
	switch t.Type {
	case token.SingleQuoteType, token.DoubleQuoteType:
		return t.Value
	}
	if t.Position != nil && (strings.HasPrefix(t.Origin, "|") || strings.HasPrefix(t.Origin, ">")) {
		return t.Value
	}
	return resolvePlain(t.Value)
}

func rawText(n ast.Node) string {
	if n == nil {
		return ""
	}
	if t := n.GetToken(); t != nil {
		return t.Value
	}
	return ""
}

func (d *doc) mapping(values []*ast.MappingValueNode, path string) *packet.Map {
	m := packet.NewMap(len(values))
	for _, mv := range values {
		if mv.Key != nil && mv.Key.IsMergeKey() {
			src := d.value(mv.Value, path+".<<")
			merge := func(v any) {
				if sm, ok := v.(*packet.Map); ok {
					for _, e := range sm.Entries() {
						if _, exists := m.Get(e.Key); !exists {
							m.Set(e.Key, e.Value)
						}
					}
				} else {
					d.errf(mv.Value, "merge key << needs a mapping")
				}
			}
			if list, ok := src.([]any); ok {
				for _, v := range list {
					merge(v)
				}
			} else {
				merge(src)
			}
			continue
		}
		var key string
		switch k := any(mv.Key).(type) {
		case ast.Node:
			kv := d.value(k, path+".<key>")
			key = packet.PyStr(kv)
		}
		if _, dup := m.Get(key); dup {
			d.errf(mv.Key, "duplicate key %q", key)
		}
		cp := childPath(path, key)
		d.pos[cp] = posOf(mv.Key)
		v := d.value(mv.Value, cp)
		d.pos[cp] = posOf(mv.Key) // a key's line is where the key is written
		m.Set(key, v)
	}
	return m
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
