package packet

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"unicode/utf8"
)

// JSON output that is byte-compatible with Python's json.dumps defaults
// (upstream PrintSink) or with its compact form (upstream run report):
// ASCII escaping with lowercase \uXXXX and surrogate pairs, no HTML
// escaping, NaN/Infinity literals, floats in Python repr, keys in insertion
// order. Values that are not JSON-like are written as their str() string.

// Style picks the separators.
type Style struct{ Item, Key string }

// Python's json.dumps separators: the default, and the compact form.
var (
	Spaced  = Style{Item: ", ", Key: ": "}
	Compact = Style{Item: ",", Key: ":"}
)

// AppendPacket appends the packet as upstream's PrintSink renders it: an
// object with keys packet_id, ts, kind, source_id, payload, meta.
func AppendPacket(b []byte, p *Packet, st Style) []byte {
	f := spacedKeys
	switch st {
	case Spaced:
	case Compact:
		f = compactKeys
	default:
		f = keysFor(st)
	}
	b = append(b, f[0]...)
	b = appendStringBody(b, p.ID)
	b = append(b, f[1]...)
	b = appendStringBody(b, p.TS)
	b = append(b, f[2]...)
	b = appendStringBody(b, p.Kind)
	b = append(b, f[3]...)
	b = appendStringBody(b, p.SourceID)
	b = append(b, f[4]...)
	b = AppendJSON(b, p.Payload, st)
	b = append(b, f[5]...)
	if meta := p.PortableMeta(); meta == nil {
		b = append(b, "{}"...)
	} else {
		b = AppendJSON(b, meta, st)
	}
	return append(b, '}')
}

// packetKeys are the constant parts of a packet object between its values,
// quotes of the string values included.
type packetKeys [6]string

var spacedKeys, compactKeys = keysFor(Spaced), keysFor(Compact)

func keysFor(st Style) *packetKeys {
	return &packetKeys{
		`{"packet_id"` + st.Key + `"`,
		`"` + st.Item + `"ts"` + st.Key + `"`,
		`"` + st.Item + `"kind"` + st.Key + `"`,
		`"` + st.Item + `"source_id"` + st.Key + `"`,
		`"` + st.Item + `"payload"` + st.Key,
		st.Item + `"meta"` + st.Key,
	}
}

// AppendJSON appends v as Python's json.dumps would.
func AppendJSON(b []byte, v any, st Style) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		if x {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case string:
		return AppendString(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case float64:
		return AppendFloat(b, x)
	case *big.Int:
		return x.Append(b, 10)
	case *Map:
		if x == nil {
			return append(b, "null"...)
		}
		b = append(b, '{')
		for i, e := range x.kv {
			if i > 0 {
				b = append(b, st.Item...)
			}
			b = AppendString(b, e.Key)
			b = append(b, st.Key...)
			b = AppendJSON(b, e.Value, st)
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, st.Item...)
			}
			b = AppendJSON(b, e, st)
		}
		return append(b, ']')
	case Marshaler:
		return x.AppendPyJSON(b, st)
	}
	return appendReflect(b, v, st)
}

// Marshaler is implemented by in-process payload types (frames, say) that
// choose their own JSON form, e.g. a short summary instead of pixels.
type Marshaler interface {
	AppendPyJSON(b []byte, st Style) []byte
}

func appendReflect(b []byte, v any, st Style) []byte {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, rv.Uint(), 10)
	case reflect.Float32:
		return AppendFloat(b, rv.Float())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			break // bytes: str() like any other object
		}
		b = append(b, '[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				b = append(b, st.Item...)
			}
			b = AppendJSON(b, rv.Index(i).Interface(), st)
		}
		return append(b, ']')
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			keys := rv.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
			b = append(b, '{')
			for i, k := range keys {
				if i > 0 {
					b = append(b, st.Item...)
				}
				b = AppendString(b, k.String())
				b = append(b, st.Key...)
				b = AppendJSON(b, rv.MapIndex(k).Interface(), st)
			}
			return append(b, '}')
		}
	}
	return AppendString(b, PyStr(v))
}

const hexdigits = "0123456789abcdef"

// AppendString appends s as a JSON string with Python's ensure_ascii
// escaping.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendStringBody(b, s)
	return append(b, '"')
}

// appendStringBody appends s escaped, without the quotes.
func appendStringBody(b []byte, s string) []byte {
	start := 0
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	for i := 0; i < len(s); {
		// Skip plain bytes 8 at a time (word-at-a-time tests from "Bit
		// Twiddling Hacks": any byte >= 0x80, < 0x20, or equal to '"',
		// '\\' or 0x7f stops the fast path), then one at a time.
		for i+8 <= len(s) {
			w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			q, bs, del := w^(lsb*'"'), w^(lsb*'\\'), w^(lsb*0x7f)
			if (w|(w-lsb*0x20)&^w|(q-lsb)&^q|(bs-lsb)&^bs|(del-lsb)&^del)&msb != 0 {
				break
			}
			i += 8
		}
		for i < len(s) && plainASCII[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			b = appendASCIIEscape(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			r -= 0x10000
			b = appendU(b, 0xd800+(r>>10))
			b = appendU(b, 0xdc00+(r&0x3ff))
		} else {
			b = appendU(b, r) // includes U+FFFD for invalid bytes
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// appendASCIIEscape appends the JSON escape of an ASCII byte that cannot
// stand as it is: '"', '\\', a C0 control or DEL (Python's escapes).
func appendASCIIEscape(b []byte, c byte) []byte {
	switch c {
	case '"':
		return append(b, `\"`...)
	case '\\':
		return append(b, `\\`...)
	case '\n':
		return append(b, `\n`...)
	case '\r':
		return append(b, `\r`...)
	case '\t':
		return append(b, `\t`...)
	case '\b':
		return append(b, `\b`...)
	case '\f':
		return append(b, `\f`...)
	}
	return appendU(b, rune(c))
}

// AppendStringUTF8 appends s as a JSON string the way json.dumps does with
// ensure_ascii=False: only '"', '\\' and C0 controls are escaped; everything
// else, DEL and U+2028 included, is written as UTF-8. Invalid UTF-8 (which
// a Python str cannot hold) becomes U+FFFD.
func AppendStringUTF8(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		b = appendASCIIEscape(b, c)
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainASCII marks the bytes a JSON string holds as they are under
// ensure_ascii: printable ASCII other than '"' and '\\'.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexdigits[r>>12&0xf], hexdigits[r>>8&0xf], hexdigits[r>>4&0xf], hexdigits[r&0xf])
}

// AppendFloat appends f as Python's float repr (json.dumps uses it):
// shortest round-trip digits, positional between 1e-4 and 1e16 with at
// least one fractional digit, otherwise d.ddde±XX.
func AppendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	return append(b, PyFloat(f)...)
}

// PyFloat returns Python's repr of a finite float.
func PyFloat(f float64) string {
	if math.IsNaN(f) {
		return "nan"
	}
	if math.IsInf(f, 0) {
		if f > 0 {
			return "inf"
		}
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // e.g. -1.2345e+05
	mant, exp := e, 0
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] == 'e' {
			mant = e[:i]
			exp, _ = strconv.Atoi(e[i+1:])
			break
		}
	}
	neg := false
	if mant[0] == '-' {
		neg = true
		mant = mant[1:]
	}
	digits := mant[:1]
	if len(mant) > 2 {
		digits += mant[2:]
	}
	var out []byte
	if neg {
		out = append(out, '-')
	}
	if exp >= -4 && exp < 16 { // positional, as Python's repr
		if exp < 0 {
			out = append(out, "0."...)
			for i := 0; i < -exp-1; i++ {
				out = append(out, '0')
			}
			out = append(out, digits...)
		} else if len(digits) <= exp+1 {
			out = append(out, digits...)
			for i := len(digits); i < exp+1; i++ {
				out = append(out, '0')
			}
			out = append(out, ".0"...)
		} else {
			out = append(out, digits[:exp+1]...)
			out = append(out, '.')
			out = append(out, digits[exp+1:]...)
		}
		return string(out)
	}
	out = append(out, digits[0])
	if len(digits) > 1 {
		out = append(out, '.')
		out = append(out, digits[1:]...)
	}
	out = append(out, 'e')
	if exp < 0 {
		out = append(out, '-')
		exp = -exp
	} else {
		out = append(out, '+')
	}
	if exp < 10 {
		out = append(out, '0')
	}
	out = strconv.AppendInt(out, int64(exp), 10)
	return string(out)
}

// PyStr returns what Python's str() gives for a JSON-like value.
func PyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return PyFloat(x)
	case *big.Int:
		return x.String()
	case *Map, []any:
		return string(appendRepr(nil, v))
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// appendRepr renders Python's repr for containers: single-quoted strings,
// True/False/None.
func appendRepr(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return append(b, strconv.Quote(x)...) // close enough: repr is only used in messages
	case *Map:
		b = append(b, '{')
		for i, e := range x.Entries() {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '\'')
			b = append(b, e.Key...)
			b = append(b, "': "...)
			b = appendRepr(b, e.Value)
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendRepr(b, e)
		}
		return append(b, ']')
	}
	return append(b, PyStr(v)...)
}

// Truthy is Python's bool() for JSON-like values: upstream decides "is
// there an idempotency key" this way, so we must too.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case int64:
		return x != 0
	case int:
		return x != 0
	case float64:
		return x != 0
	case *big.Int:
		return x != nil && x.Sign() != 0
	case []any:
		return len(x) > 0
	case *Map:
		return x.Len() > 0
	}
	return true
}
