package ionodes

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"sort"
	"strconv"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// jsonStyle is one way of calling Python's json.dumps: upstream's HTTP and
// file sinks call it with ensure_ascii and indent, which packet.AppendJSON
// (always ASCII, never indented, never failing) does not cover.
type jsonStyle struct {
	ascii  bool // ensure_ascii
	indent int  // < 0: no indent (one line); >= 0: Python's indent=N
}

// maxJSONDepth stands in for Python's recursion limit, so that a cyclic or
// hostile payload fails instead of exhausting the stack.
const maxJSONDepth = 1000

// notJSONError is Python's TypeError "Object of type X is not JSON
// serializable", with the place of the value.
type notJSONError struct {
	path string
	v    any
}

func (e *notJSONError) Error() string {
	return fmt.Sprintf("%s is not JSON-serializable (Go type %T)", e.path, e.v)
}

// appendPyJSON appends v as json.dumps(v, ensure_ascii=st.ascii,
// indent=st.indent) does, with Python's default separators for that call
// (", "/": " on one line, ","/": " when indented). Values that are not
// JSON-like (in-process frames, bytes, structs) are an error, as upstream
// raises TypeError for them. NaN and infinities are written as Python does
// (NaN, Infinity), which strict JSON parsers reject: that is upstream's
// allow_nan=True default, kept for byte compatibility.
func appendPyJSON(b []byte, v any, st jsonStyle, path string) ([]byte, error) {
	out, err := st.value(b, v, 0)
	if err != nil {
		return b, atPath(err, path)
	}
	return out, nil
}

// atPath prefixes the place of a failing value while the error unwinds, so
// that the happy path builds no path strings.
func atPath(err error, prefix string) error {
	var nj *notJSONError
	if errors.As(err, &nj) {
		nj.path = prefix + nj.path
		return err
	}
	var de *depthError
	if errors.As(err, &de) {
		de.path = prefix + de.path
	}
	return err
}

// depthError is Python's RecursionError for too deep (or cyclic) values.
type depthError struct{ path string }

func (e *depthError) Error() string {
	return fmt.Sprintf("%s: nesting deeper than %d", e.path, maxJSONDepth)
}

func (st jsonStyle) newline(b []byte, level int) []byte {
	b = append(b, '\n')
	for i := 0; i < level*st.indent; i++ {
		b = append(b, ' ')
	}
	return b
}

// open, sep and close lay out the inside of a container.
func (st jsonStyle) sep(b []byte, i, level int) []byte {
	if st.indent < 0 {
		if i > 0 {
			b = append(b, ", "...)
		}
		return b
	}
	if i > 0 {
		b = append(b, ',')
	}
	return st.newline(b, level+1)
}

func (st jsonStyle) close(b []byte, n, level int, c byte) []byte {
	if st.indent >= 0 && n > 0 {
		b = st.newline(b, level)
	}
	return append(b, c)
}

func (st jsonStyle) str(b []byte, s string) []byte {
	if st.ascii {
		return packet.AppendString(b, s)
	}
	return packet.AppendStringUTF8(b, s)
}

func (st jsonStyle) value(b []byte, v any, level int) ([]byte, error) {
	if level > maxJSONDepth {
		return b, &depthError{}
	}
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
		return st.str(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case float64:
		return packet.AppendFloat(b, x), nil
	case *big.Int:
		if x == nil {
			return append(b, "null"...), nil
		}
		return x.Append(b, 10), nil
	case *packet.Map:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '{')
		for i, e := range x.Entries() {
			b = st.sep(b, i, level)
			b = st.str(b, e.Key)
			b = append(b, ": "...)
			if b, err = st.value(b, e.Value, level+1); err != nil {
				return b, atPath(err, "."+e.Key)
			}
		}
		return st.close(b, x.Len(), level, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			b = st.sep(b, i, level)
			if b, err = st.value(b, e, level+1); err != nil {
				return b, atPath(err, "["+strconv.Itoa(i)+"]")
			}
		}
		return st.close(b, len(x), level, ']'), nil
	case packet.Marshaler:
		// In-process payloads (frames) print a summary, but sending or
		// storing that summary would lose the data: upstream marks these
		// sinks REQUIRES_PORTABLE_PAYLOAD and raises TypeError.
		return b, &notJSONError{v: v}
	}
	return st.reflectValue(b, v, level)
}

// reflectValue accepts Go-typed numbers, slices and string-keyed maps that
// a Go node may emit (they are JSON in all but type); maps are written in
// key order, the only stable order a Go map has.
func (st jsonStyle) reflectValue(b []byte, v any, level int) ([]byte, error) {
	rv := reflect.ValueOf(v)
	var err error
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(b, rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return packet.AppendFloat(b, rv.Float()), nil
	case reflect.String:
		return st.str(b, rv.String()), nil
	case reflect.Bool:
		return st.value(b, rv.Bool(), level)
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			break // bytes: not JSON in Python either
		}
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i := 0; i < rv.Len(); i++ {
			b = st.sep(b, i, level)
			if b, err = st.value(b, rv.Index(i).Interface(), level+1); err != nil {
				return b, atPath(err, "["+strconv.Itoa(i)+"]")
			}
		}
		return st.close(b, rv.Len(), level, ']'), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			return append(b, "null"...), nil
		}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		b = append(b, '{')
		for i, k := range keys {
			b = st.sep(b, i, level)
			b = st.str(b, k.String())
			b = append(b, ": "...)
			if b, err = st.value(b, rv.MapIndex(k).Interface(), level+1); err != nil {
				return b, atPath(err, "."+k.String())
			}
		}
		return st.close(b, len(keys), level, '}'), nil
	}
	return b, &notJSONError{v: v}
}

// appendRecord serialises what upstream's sinks write for a packet: the
// payload (body: payload) or the envelope {packet_id, ts, kind, source_id,
// payload, meta} with meta {} when empty (body: packet). Errors name the
// packet's id, kind and source as upstream's P7 messages do.
func appendRecord(b []byte, p *packet.Packet, bodyPacket bool, st jsonStyle) ([]byte, error) {
	out, err := st.record(b, p, bodyPacket)
	if err != nil {
		return b, fmt.Errorf("packet %s (kind %q, source_id %q): %w", p.ID, p.Kind, p.SourceID, err)
	}
	return out, nil
}

func (st jsonStyle) record(b []byte, p *packet.Packet, bodyPacket bool) ([]byte, error) {
	if !bodyPacket {
		return appendPyJSON(b, p.Payload, st, "payload")
	}
	meta := p.PortableMeta()
	if meta == nil {
		meta = emptyMap
	}
	b = append(b, '{')
	for i, f := range [...]struct{ key, v string }{{"packet_id", p.ID}, {"ts", p.TS}, {"kind", p.Kind}, {"source_id", p.SourceID}} {
		b = st.sep(b, i, 0)
		b = st.str(b, f.key)
		b = append(b, ": "...)
		b = st.str(b, f.v)
	}
	var err error
	for i, f := range [...]struct {
		key string
		v   any
	}{{"payload", p.Payload}, {"meta", meta}} {
		b = st.sep(b, 4+i, 0)
		b = st.str(b, f.key)
		b = append(b, ": "...)
		if b, err = st.value(b, f.v, 1); err != nil {
			return b, atPath(err, "packet."+f.key)
		}
	}
	return st.close(b, 6, 0, '}'), nil
}

var emptyMap = packet.NewMap(0)
