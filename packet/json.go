package packet

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"unicode/utf8"
)

// One Python-JSON encoder for every writer: PrintSink and the run report
// (json.dumps(..., default=str): lenient), the file, HTTP and queue sinks
// (json.dumps with ensure_ascii/indent, which raises TypeError: strict).
// It is byte-compatible with CPython's json.dumps: \uXXXX escapes in
// lowercase with surrogate pairs under ensure_ascii, no HTML escaping,
// NaN/Infinity literals (allow_nan=True), floats in Python repr, object
// keys in insertion order (Go maps, which have none, in key order).
//
// Go values are written as the Python value they stand for: named bools,
// numbers and strings as bool, int, float, str; Go slices and arrays as
// lists, a nil slice as [] and a nil string-keyed map as {} (a Python
// list or dict is never None); a nil *big.Int or *Map as null. Anything
// else (structs, pointers, []byte, funcs, in-process frames) is not JSON:
// strict mode returns a *JSONError naming its path, lenient mode writes
// its str() as a string (a Marshaler writes its own summary).

// Style picks the separators.
type Style struct{ Item, Key string }

// Python's json.dumps separators: the default, and the compact form.
var (
	Spaced  = Style{Item: ", ", Key: ": "}
	Compact = Style{Item: ",", Key: ":"}
)

// JSONOptions are the json.dumps arguments the project's writers use. The
// zero value is json.dumps(v, ensure_ascii=False, default=str) on one line.
type JSONOptions struct {
	// Style is the separators; the zero Style is json.dumps's default for
	// the layout: ", " and ": " on one line, "," and ": " when Pretty.
	Style       Style
	EnsureASCII bool
	// Pretty lays the value out on lines, Indent spaces per level: Python's
	// indent=Indent (indent=0 still breaks lines).
	Pretty bool
	Indent int
	// Strict refuses values that are not JSON (Python's TypeError) instead
	// of writing their str().
	Strict bool
	// Path names the value in errors ("payload"); the envelope functions
	// append ".payload" and ".meta" to it.
	Path string
}

// MaxJSONDepth stands in for Python's recursion limit, so that a cyclic or
// hostile value fails instead of exhausting the stack.
const MaxJSONDepth = 1000

// JSONError is Python's TypeError "Object of type X is not JSON
// serializable" (Strict) or its RecursionError (TooDeep), with the place of
// the value: "payload.dets[2].bbox".
type JSONError struct {
	Path    string
	Value   any // the offending value; nil when TooDeep
	TooDeep bool
}

func (e *JSONError) Error() string {
	if e.TooDeep {
		return fmt.Sprintf("%s: nesting deeper than %d", e.Path, MaxJSONDepth)
	}
	return fmt.Sprintf("%s is not JSON-serializable (Go type %T)", e.Path, e.Value)
}

// atPath prefixes the place of a failing value while the error unwinds, so
// that the happy path builds no path strings.
func atPath(err error, prefix string) error {
	if je, ok := err.(*JSONError); ok {
		je.Path = prefix + je.Path
	}
	return err
}

// JSONEncoder is a JSONOptions resolved once, for a writer that encodes
// many values with the same options (a sink). The zero value is not ready:
// use NewJSONEncoder.
type JSONEncoder struct {
	item, key     string
	ascii, strict bool
	pretty        bool
	indent        int
	path          string // o.Path
	pk            *packetKeys
}

// NewJSONEncoder resolves o.
func NewJSONEncoder(o JSONOptions) JSONEncoder {
	e := JSONEncoder{item: o.Style.Item, key: o.Style.Key, ascii: o.EnsureASCII, strict: o.Strict, pretty: o.Pretty, indent: o.Indent, path: o.Path}
	if o.Style == (Style{}) {
		e.item, e.key = ", ", ": "
		if o.Pretty {
			e.item = ","
		}
	}
	if !o.Pretty {
		e.pk = e.keys()
	}
	return e
}

// Append appends v as json.dumps with the encoder's options would. On
// error it returns b unchanged.
func (e *JSONEncoder) Append(b []byte, v any) ([]byte, error) {
	out, err := e.value(b, v, 0)
	if err != nil {
		return b, atPath(err, e.path)
	}
	return out, nil
}

// AppendJSONOpts appends v as json.dumps with o would. On error it returns
// b unchanged.
func AppendJSONOpts(b []byte, v any, o JSONOptions) ([]byte, error) {
	e := NewJSONEncoder(o)
	return e.Append(b, v)
}

// AppendJSON appends v as json.dumps(v, separators=st, default=str) would:
// ASCII, one line, lenient. A value nested deeper than MaxJSONDepth (a
// cycle) is written as a JSON string holding the error.
func AppendJSON(b []byte, v any, st Style) []byte {
	e := JSONEncoder{item: st.Item, key: st.Key, ascii: true}
	out, err := e.value(b, v, 0)
	if err != nil {
		return AppendString(b, "<"+err.Error()+">")
	}
	return out
}

// AppendPacketJSON appends the packet envelope upstream's PrintSink and
// body: packet sinks write: an object with keys packet_id, ts, kind,
// source_id, payload, meta (meta without Local values, {} when empty).
// Errors name o.Path + ".payload" or ".meta".
func AppendPacketJSON(b []byte, p *Packet, o JSONOptions) ([]byte, error) {
	e := NewJSONEncoder(o)
	return e.AppendPacket(b, p)
}

// field is the path of an envelope field, built only for an error.
func (e *JSONEncoder) field(name string) string {
	if e.path == "" {
		return name
	}
	return e.path + "." + name
}

// AppendPacket is AppendPacketJSON with the encoder's options.
func (e *JSONEncoder) AppendPacket(b []byte, p *Packet) ([]byte, error) {
	meta := p.PortableMeta()
	if meta == nil {
		meta = emptyMap
	}
	out, err := b, error(nil)
	if !e.pretty {
		// The hot path (PrintSink): the constant parts between the
		// values are written in one piece each.
		f := e.pk
		if f == nil {
			f = e.keys()
		}
		out = append(out, f[0]...)
		out = appendStringBody(out, p.ID, e.ascii)
		out = append(out, f[1]...)
		out = appendStringBody(out, p.TS, e.ascii)
		out = append(out, f[2]...)
		out = appendStringBody(out, p.Kind, e.ascii)
		out = append(out, f[3]...)
		out = appendStringBody(out, p.SourceID, e.ascii)
		out = append(out, f[4]...)
		if out, err = e.value(out, p.Payload, 1); err != nil {
			return b, atPath(err, e.field("payload"))
		}
		out = append(out, f[5]...)
		if out, err = e.value(out, meta, 1); err != nil {
			return b, atPath(err, e.field("meta"))
		}
		return append(out, '}'), nil
	}
	if out, err = e.prettyPacket(out, p, meta); err != nil {
		return b, err
	}
	return out, nil
}

func (e *JSONEncoder) prettyPacket(b []byte, p *Packet, meta *Map) ([]byte, error) {
	var err error
	b = append(b, '{')
	for i, f := range [...]struct{ key, v string }{{"packet_id", p.ID}, {"ts", p.TS}, {"kind", p.Kind}, {"source_id", p.SourceID}} {
		b = e.sep(b, i, 0)
		b = e.str(b, f.key)
		b = append(b, e.key...)
		b = e.str(b, f.v)
	}
	for i, f := range [...]struct {
		key string
		v   any
	}{{"payload", p.Payload}, {"meta", meta}} {
		b = e.sep(b, 4+i, 0)
		b = e.str(b, f.key)
		b = append(b, e.key...)
		if b, err = e.value(b, f.v, 1); err != nil {
			return b, atPath(err, e.field(f.key))
		}
	}
	return e.close(b, 6, 0, '}'), nil
}

var emptyMap = NewMap(0)

// packetKeys are the constant parts of a one-line packet object between
// its values, quotes of the string values included.
type packetKeys [6]string

var spacedKeys, compactKeys = keysFor(Spaced), keysFor(Compact)

func (e *JSONEncoder) keys() *packetKeys {
	switch {
	case e.item == ", " && e.key == ": ":
		return spacedKeys
	case e.item == "," && e.key == ":":
		return compactKeys
	}
	return keysFor(Style{e.item, e.key})
}

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

func (e *JSONEncoder) str(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendStringBody(b, s, e.ascii)
	return append(b, '"')
}

func (e *JSONEncoder) newline(b []byte, level int) []byte {
	b = append(b, '\n')
	for i := 0; i < level*e.indent; i++ {
		b = append(b, ' ')
	}
	return b
}

// sep starts item i of a container at level.
func (e *JSONEncoder) sep(b []byte, i, level int) []byte {
	if i > 0 {
		b = append(b, e.item...)
	}
	if e.pretty {
		b = e.newline(b, level+1)
	}
	return b
}

// close ends a container of n items at level with c.
func (e *JSONEncoder) close(b []byte, n, level int, c byte) []byte {
	if e.pretty && n > 0 {
		b = e.newline(b, level)
	}
	return append(b, c)
}

func (e *JSONEncoder) value(b []byte, v any, level int) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return e.str(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case float64:
		return AppendFloat(b, x), nil
	case *big.Int:
		if x == nil {
			return append(b, "null"...), nil
		}
		return x.Append(b, 10), nil
	case *Map:
		if x == nil {
			return append(b, "null"...), nil
		}
		if level >= MaxJSONDepth {
			return b, &JSONError{TooDeep: true}
		}
		b = append(b, '{')
		for i := range x.kv {
			kv := &x.kv[i]
			b = e.sep(b, i, level)
			b = e.str(b, kv.Key)
			b = append(b, e.key...)
			// The commonest values without a call (PrintSink's hot path).
			switch y := kv.Value.(type) {
			case string:
				b = e.str(b, y)
				continue
			case int64:
				b = strconv.AppendInt(b, y, 10)
				continue
			}
			if b, err = e.value(b, kv.Value, level+1); err != nil {
				return b, atPath(err, "."+kv.Key)
			}
		}
		return e.close(b, len(x.kv), level, '}'), nil
	case []any:
		if level >= MaxJSONDepth {
			return b, &JSONError{TooDeep: true}
		}
		b = append(b, '[')
		for i, el := range x {
			b = e.sep(b, i, level)
			if b, err = e.value(b, el, level+1); err != nil {
				return b, atPath(err, "["+strconv.Itoa(i)+"]")
			}
		}
		return e.close(b, len(x), level, ']'), nil
	case Marshaler:
		if e.strict {
			// In-process payloads (frames) print a summary, but sending
			// or storing that summary would lose the data: upstream marks
			// these sinks REQUIRES_PORTABLE_PAYLOAD and raises TypeError.
			return b, &JSONError{Value: v}
		}
		return x.AppendPyJSON(b, Style{e.item, e.key}), nil
	}
	return e.reflectValue(b, v, level)
}

// Marshaler is implemented by in-process payload types (frames, say) that
// choose their own JSON form, e.g. a short summary instead of pixels. Strict
// encoding refuses them.
type Marshaler interface {
	AppendPyJSON(b []byte, st Style) []byte
}

// reflectValue writes Go-typed numbers, strings, slices and string-keyed
// maps that a Go node may emit (they are JSON in all but type); maps are
// written in key order, the only stable order a Go map has.
func (e *JSONEncoder) reflectValue(b []byte, v any, level int) ([]byte, error) {
	rv := reflect.ValueOf(v)
	var err error
	switch rv.Kind() {
	case reflect.Bool:
		if rv.Bool() {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return AppendFloat(b, rv.Float()), nil
	case reflect.String:
		return e.str(b, rv.String()), nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			break // bytes: not JSON in Python either
		}
		if level >= MaxJSONDepth {
			return b, &JSONError{TooDeep: true}
		}
		n := rv.Len()
		b = append(b, '[')
		for i := 0; i < n; i++ {
			b = e.sep(b, i, level)
			if b, err = e.value(b, rv.Index(i).Interface(), level+1); err != nil {
				return b, atPath(err, "["+strconv.Itoa(i)+"]")
			}
		}
		return e.close(b, n, level, ']'), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if level >= MaxJSONDepth {
			return b, &JSONError{TooDeep: true}
		}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		b = append(b, '{')
		for i, k := range keys {
			b = e.sep(b, i, level)
			b = e.str(b, k.String())
			b = append(b, e.key...)
			if b, err = e.value(b, rv.MapIndex(k).Interface(), level+1); err != nil {
				return b, atPath(err, "."+k.String())
			}
		}
		return e.close(b, len(keys), level, '}'), nil
	}
	if e.strict {
		return b, &JSONError{Value: v}
	}
	return e.str(b, PyStr(v)), nil
}

const hexdigits = "0123456789abcdef"

// AppendString appends s as a JSON string with Python's ensure_ascii
// escaping.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendStringBody(b, s, true)
	return append(b, '"')
}

// appendStringBody appends s escaped, without the quotes: with ascii as
// json.dumps's ensure_ascii=True (everything outside printable ASCII as
// \uXXXX, surrogate pairs above U+FFFF), otherwise as ensure_ascii=False
// (only '"', '\\' and C0 controls escaped; DEL and U+2028 as they are).
// Invalid UTF-8, which a Python str cannot hold, becomes U+FFFD.
func appendStringBody(b []byte, s string, ascii bool) []byte {
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
		if c < utf8.RuneSelf {
			if c == 0x7f && !ascii {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = appendASCIIEscape(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !ascii {
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, "\ufffd"...)
				start = i + 1
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
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
	b = appendStringBody(b, s, false)
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
	case []byte:
		return pyBytesRepr(x)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// pyBytesRepr is Python's repr (and str) of bytes: b'...' with \\, \t,
// \n, \r and \xNN escapes, in double quotes when the text holds ' and no ".
func pyBytesRepr(x []byte) string {
	q := byte('\'')
	if bytes.IndexByte(x, '\'') >= 0 && bytes.IndexByte(x, '"') < 0 {
		q = '"'
	}
	b := append(make([]byte, 0, len(x)+3), 'b', q)
	for _, c := range x {
		switch {
		case c == q || c == '\\':
			b = append(b, '\\', c)
		case c == '\t':
			b = append(b, `\t`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'x', hexdigits[c>>4], hexdigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return string(append(b, q))
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
