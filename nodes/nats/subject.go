package natsnodes

import (
	"errors"
	"fmt"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// subjectTemplate renders a subject from packet fields: {source_id},
// {kind}, {packet_id}, {payload.a.b}, {meta.k}; the rest is literal.
type subjectTemplate struct {
	parts  []tmplPart
	static bool
}

type tmplPart struct {
	lit  string
	root string   // "" for a literal
	path []string // below payload/meta
}

func parseSubject(s string) (subjectTemplate, error) {
	var t subjectTemplate
	t.static = true
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			if strings.ContainsRune(s, '}') {
				return t, errors.New("unbalanced '}'")
			}
			t.parts = append(t.parts, tmplPart{lit: s})
			break
		}
		if i > 0 {
			if strings.ContainsRune(s[:i], '}') {
				return t, errors.New("unbalanced '}'")
			}
			t.parts = append(t.parts, tmplPart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return t, errors.New("unclosed '{'")
		}
		field := s[i+1 : i+j]
		segs := strings.Split(field, ".")
		switch {
		case (field == "source_id" || field == "kind" || field == "packet_id"):
		case (segs[0] == "payload" || segs[0] == "meta") && len(segs) > 1 && !containsEmpty(segs[1:]):
		case segs[0] == "payload" && len(segs) == 1:
		default:
			return t, fmt.Errorf("unknown field {%s} (want {source_id}, {kind}, {packet_id}, {payload.x} or {meta.x})", field)
		}
		t.parts = append(t.parts, tmplPart{root: segs[0], path: segs[1:]})
		t.static = false
		s = s[i+j+1:]
	}
	if t.static {
		if err := checkSubject(t.render(nil)); err != nil {
			return t, err
		}
	}
	return t, nil
}

func containsEmpty(ss []string) bool {
	for _, s := range ss {
		if s == "" {
			return true
		}
	}
	return false
}

// render builds the subject of p (p may be nil for a static template).
func (t *subjectTemplate) render(p *packet.Packet) string {
	if len(t.parts) == 1 && t.parts[0].root == "" {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, pt := range t.parts {
		switch pt.root {
		case "":
			b.WriteString(pt.lit)
		case "source_id":
			b.WriteString(p.SourceID)
		case "kind":
			b.WriteString(p.Kind)
		case "packet_id":
			b.WriteString(p.ID)
		case "payload":
			b.WriteString(lookup(p.Payload, pt.path))
		case "meta":
			b.WriteString(lookup(p.Meta, pt.path))
		}
	}
	return b.String()
}

// lookup returns the value at path as text; "" when absent, which the
// subject check then refuses (an empty token).
func lookup(v any, path []string) string {
	for _, k := range path {
		m, ok := v.(*packet.Map)
		if !ok || m == nil {
			return ""
		}
		if v, ok = m.Get(k); !ok {
			return ""
		}
	}
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return packet.PyStr(v)
}

// checkSubject refuses what a publisher must not use: an empty subject or
// token, white space, wildcards.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	for _, tok := range strings.Split(s, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token", s)
		case strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("subject %q has a wildcard", s)
		case strings.ContainsAny(tok, " \t\r\n\f\v\x00"):
			return fmt.Errorf("subject %q has white space", s)
		}
	}
	return nil
}

// checkFilter accepts a subscription or filter subject: wildcards allowed
// as whole tokens ('>' last).
func checkFilter(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token", s)
		case tok == "*":
		case tok == ">":
			if i != len(toks)-1 {
				return fmt.Errorf("subject %q: '>' must be the last token", s)
			}
		case strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("subject %q: a wildcard must be a whole token", s)
		case strings.ContainsAny(tok, " \t\r\n\f\v\x00"):
			return fmt.Errorf("subject %q has white space", s)
		}
	}
	return nil
}
