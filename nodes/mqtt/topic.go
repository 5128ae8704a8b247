package mqtt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// template is a sink topic such as "cams/{source_id}/{payload.event_type}":
// literal text and packet fields. {{ and }} are literal braces.
type template struct {
	parts []part
}

type part struct {
	lit   string
	field string   // source_id, kind, packet_id, payload, meta
	path  []string // keys below payload or meta
}

func parseTemplate(s string) (*template, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	t := &template{}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, fmt.Errorf("%q: unmatched } at %d (write }} for a literal brace)", s, i)
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed { at %d", s, i)
			}
			name := s[i+1 : i+end]
			p, err := fieldPart(name)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", s, err)
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, part{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, p)
			i += end
		case c == '+' || c == '#':
			return nil, fmt.Errorf("%q: wildcard %c in a topic to publish to (wildcards are for subscriptions)", s, c)
		case c == 0:
			return nil, fmt.Errorf("%q holds a NUL character", s)
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, part{lit: lit.String()})
	}
	return t, nil
}

func fieldPart(name string) (part, error) {
	keys := strings.Split(name, ".")
	for _, k := range keys {
		if k == "" {
			return part{}, fmt.Errorf("{%s}: empty key", name)
		}
	}
	switch keys[0] {
	case "source_id", "kind", "packet_id":
		if len(keys) > 1 {
			return part{}, fmt.Errorf("{%s}: %s has no keys below it", name, keys[0])
		}
	case "payload", "meta":
		if keys[0] == "meta" && len(keys) == 1 {
			return part{}, errors.New("{meta}: name a key, {meta.key}")
		}
	default:
		return part{}, fmt.Errorf("{%s}: unknown field (one of source_id, kind, packet_id, payload.<key>, meta.<key>)", name)
	}
	return part{field: keys[0], path: keys[1:]}, nil
}

// static reports the topic when the template has no fields.
func (t *template) static() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].field == "" {
		return t.parts[0].lit, true
	}
	return "", false
}

// resolve fills the template from p. A missing field, a value that is
// not a scalar, or a result holding a wildcard or nothing is an error.
func (t *template) resolve(p *packet.Packet) (string, error) {
	if s, ok := t.static(); ok {
		return s, nil
	}
	var b strings.Builder
	for _, pt := range t.parts {
		if pt.field == "" {
			b.WriteString(pt.lit)
			continue
		}
		var v any
		switch pt.field {
		case "source_id":
			v = p.SourceID
		case "kind":
			v = p.Kind
		case "packet_id":
			v = p.ID
		case "payload":
			v = p.Payload
		case "meta":
			v = p.Meta
		}
		for _, k := range pt.path {
			m, ok := v.(*packet.Map)
			if !ok {
				return "", fmt.Errorf("topic field {%s}: %s is not a map", pt.name(), k)
			}
			if v, ok = m.Get(k); !ok {
				return "", fmt.Errorf("topic field {%s}: no key %q", pt.name(), k)
			}
		}
		switch x := v.(type) {
		case string:
			b.WriteString(x)
		case int64:
			b.WriteString(strconv.FormatInt(x, 10))
		case float64:
			b.WriteString(packet.PyFloat(x))
		case bool:
			b.WriteString(strconv.FormatBool(x))
		default:
			return "", fmt.Errorf("topic field {%s}: %T is not a string or number", pt.name(), v)
		}
	}
	s := b.String()
	switch {
	case s == "":
		return "", errors.New("topic resolved to an empty string")
	case strings.ContainsAny(s, "+#\x00"):
		return "", fmt.Errorf("topic %q holds a wildcard or NUL (from the packet's fields)", s)
	case len(s) > 65535:
		return "", errors.New("topic longer than 65535 bytes")
	}
	return s, nil
}

func (pt part) name() string {
	return strings.Join(append([]string{pt.field}, pt.path...), ".")
}
