package ionodes

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pyFormat renders a Python str.format template such as
// "{seq:06d}_{source_id}_{kind}.json" (upstream JsonFileSink's
// filename_template) with named fields. It supports what a file name
// template needs: {{ and }} escapes, the conversion !s, and the format
// spec [[fill]align][sign][#][0][width][,|_][.precision][type] for ints
// (types d n b o x X) and strings (type s). Anything else (positional or
// attribute fields, nested specs, !r) is an error, found when the config is
// validated rather than per packet.
func pyFormat(tmpl string, fields map[string]any) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); {
		c := tmpl[i]
		switch c {
		case '{':
			if i+1 < len(tmpl) && tmpl[i+1] == '{' {
				b.WriteByte('{')
				i += 2
				continue
			}
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("single '{' encountered in format string")
			}
			field := tmpl[i+1 : i+end]
			if strings.ContainsRune(field, '{') {
				return "", fmt.Errorf("nested replacement fields are not supported: {%s}", field)
			}
			s, err := formatField(field, fields)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
			i += end + 1
		case '}':
			if i+1 < len(tmpl) && tmpl[i+1] == '}' {
				b.WriteByte('}')
				i += 2
				continue
			}
			return "", fmt.Errorf("single '}' encountered in format string")
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

func formatField(field string, fields map[string]any) (string, error) {
	name, spec, _ := strings.Cut(field, ":")
	name, conv, hasConv := strings.Cut(name, "!")
	if hasConv && conv != "s" {
		return "", fmt.Errorf("conversion !%s is not supported in {%s} (only !s)", conv, field)
	}
	v, ok := fields[name]
	if !ok {
		return "", fmt.Errorf("unknown field {%s} (fields: seq, packet_id, source_id, kind, ts)", name)
	}
	if hasConv {
		if n, isInt := v.(int64); isInt {
			v = strconv.FormatInt(n, 10)
		}
	}
	fs, err := parseSpec(spec)
	if err != nil {
		return "", fmt.Errorf("{%s}: %w", field, err)
	}
	switch x := v.(type) {
	case int64:
		return fs.formatInt(x)
	case string:
		return fs.formatString(x)
	}
	return "", fmt.Errorf("{%s}: unsupported value type %T", field, v)
}

type formatSpec struct {
	fill      rune
	align     byte // 0, '<', '>', '^', '='
	sign      byte // 0, '+', '-', ' '
	alt       bool
	zero      bool
	width     int
	grouping  byte // 0, ',', '_'
	precision int  // -1: none
	typ       byte
}

func parseSpec(s string) (formatSpec, error) {
	fs := formatSpec{fill: ' ', precision: -1}
	isAlign := func(c byte) bool { return c == '<' || c == '>' || c == '^' || c == '=' }
	i := 0
	if r, size := utf8.DecodeRuneInString(s); size > 0 && size < len(s) && isAlign(s[size]) {
		fs.fill, fs.align = r, s[size]
		i = size + 1
	} else if len(s) > 0 && isAlign(s[0]) {
		fs.align = s[0]
		i = 1
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-' || s[i] == ' ') {
		fs.sign = s[i]
		i++
	}
	if i < len(s) && s[i] == '#' {
		fs.alt = true
		i++
	}
	if i < len(s) && s[i] == '0' {
		fs.zero = true
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > start {
		fs.width, _ = strconv.Atoi(s[start:i])
	}
	if i < len(s) && (s[i] == ',' || s[i] == '_') {
		fs.grouping = s[i]
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return fs, fmt.Errorf("format specifier missing precision")
		}
		fs.precision, _ = strconv.Atoi(s[start:i])
	}
	if i < len(s) {
		fs.typ = s[i]
		i++
	}
	if i != len(s) {
		return fs, fmt.Errorf("invalid format specifier %q", s)
	}
	if fs.width > 4096 {
		return fs, fmt.Errorf("width %d is too large", fs.width)
	}
	return fs, nil
}

func (fs formatSpec) pad(body string, defAlign byte, sign string) string {
	align := fs.align
	fill := fs.fill
	if align == 0 && fs.zero {
		align, fill = '=', '0'
	}
	if align == 0 {
		align = defAlign
	}
	n := fs.width - utf8.RuneCountInString(sign) - utf8.RuneCountInString(body)
	if n <= 0 {
		return sign + body
	}
	f := strings.Repeat(string(fill), n)
	switch align {
	case '<':
		return sign + body + f
	case '^':
		return strings.Repeat(string(fill), n/2) + sign + body + strings.Repeat(string(fill), n-n/2)
	case '=':
		return sign + f + body
	}
	return f + sign + body
}

func (fs formatSpec) formatInt(v int64) (string, error) {
	if fs.precision >= 0 {
		return "", fmt.Errorf("precision not allowed in integer format specifier")
	}
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	var body, prefix string
	switch fs.typ {
	case 0, 'd', 'n':
		body = strconv.FormatUint(u, 10)
	case 'b':
		body, prefix = strconv.FormatUint(u, 2), "0b"
	case 'o':
		body, prefix = strconv.FormatUint(u, 8), "0o"
	case 'x':
		body, prefix = strconv.FormatUint(u, 16), "0x"
	case 'X':
		body, prefix = strings.ToUpper(strconv.FormatUint(u, 16)), "0X"
	default:
		return "", fmt.Errorf("unknown format code '%c' for an integer", fs.typ)
	}
	if fs.grouping != 0 {
		every := 3
		if fs.typ != 0 && fs.typ != 'd' && fs.typ != 'n' {
			every = 4
		}
		var g []byte
		for i := range body {
			if i > 0 && (len(body)-i)%every == 0 {
				g = append(g, fs.grouping)
			}
			g = append(g, body[i])
		}
		body = string(g)
	}
	sign := ""
	switch {
	case neg:
		sign = "-"
	case fs.sign == '+':
		sign = "+"
	case fs.sign == ' ':
		sign = " "
	}
	if fs.alt {
		sign += prefix
	}
	return fs.pad(body, '>', sign), nil
}

func (fs formatSpec) formatString(v string) (string, error) {
	if fs.typ != 0 && fs.typ != 's' {
		return "", fmt.Errorf("unknown format code '%c' for a string", fs.typ)
	}
	if fs.sign != 0 || fs.alt || fs.grouping != 0 {
		return "", fmt.Errorf("sign, '#' and grouping are not allowed in a string format specifier")
	}
	if fs.align == '=' {
		return "", fmt.Errorf("'=' alignment not allowed in a string format specifier")
	}
	if fs.precision >= 0 && utf8.RuneCountInString(v) > fs.precision {
		v = string([]rune(v)[:fs.precision])
	}
	if fs.zero && fs.align == 0 {
		// Python pads strings with '0' on the right for "05s".
		fs.fill, fs.align = '0', '<'
	}
	return fs.pad(v, '<', ""), nil
}
