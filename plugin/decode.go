package plugin

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// decoder turns a graph config (JSON-like values) into a typed struct. It
// collects every problem instead of stopping at the first.
type decoder struct {
	warns []*FieldError
	errs  []*FieldError
}

var mapType = reflect.TypeFor[*packet.Map]()

func (d *decoder) errf(path, format string, args ...any) {
	d.errs = append(d.errs, Errorf(path, format, args...))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type fieldInfo struct {
	key      string
	index    []int // reflect.Value.FieldByIndex: through inline structs
	required bool
	enum     []string
	doc      string
	tag      reflect.StructTag // the metadata tags (describe reads them)
}

// structFields lists t's config keys. A struct field tagged
// `yaml:",inline"` contributes its own fields as keys of t, so that configs
// sharing a group of keys declare it once.
func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			// an embedded struct of an unexported type is fine: its
			// exported fields are settable, as in encoding/json
			for _, inner := range structFields(f.Type) {
				inner.index = append([]int{i}, inner.index...)
				out = append(out, inner)
			}
			continue
		}
		if !f.IsExported() || key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		fi := fieldInfo{key: key, index: []int{i}, required: f.Tag.Get("required") == "true", doc: f.Tag.Get("doc"), tag: f.Tag}
		if e := f.Tag.Get("enum"); e != "" {
			fi.enum = strings.Split(e, ",")
		}
		out = append(out, fi)
	}
	return out
}

func (d *decoder) decodeStruct(v reflect.Value, cfg *packet.Map, path string) {
	fields := structFields(v.Type())
	for _, fi := range fields {
		raw, ok := cfg.Get(fi.key)
		fv := v.FieldByIndex(fi.index)
		if !ok || (raw == nil && fv.Kind() != reflect.Interface) {
			if fi.required {
				d.errf(join(path, fi.key), "required key is missing")
			}
			continue
		}
		d.decodeValue(fv, raw, join(path, fi.key))
		if fi.enum != nil && fv.Kind() == reflect.String {
			s := fv.String()
			if !slices.Contains(fi.enum, s) {
				d.errf(join(path, fi.key), "must be one of %s, got %q", strings.Join(fi.enum, ", "), s)
			}
		}
	}
	var known []string
	for _, f := range fields {
		known = append(known, f.key)
	}
	for _, e := range cfg.Entries() {
		if slices.Contains(known, e.Key) {
			continue
		}
		// An unknown key is an error: a typo (cout for count) would
		// otherwise leave the default in force, silently.
		msg := fmt.Sprintf("unknown key %q%s", e.Key, DidYouMean(e.Key, known))
		if len(known) == 0 {
			msg += " (this node has no config keys)"
		} else if !strings.Contains(msg, "did you mean") {
			msg += " (known: " + strings.Join(known, ", ") + ")"
		}
		d.errs = append(d.errs, &FieldError{Path: join(path, e.Key), Msg: msg})
	}
}

// shown describes a bad value for an error message: its type and value.
func shown(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case nil, *packet.Map, []any:
		return typeName(v)
	}
	return typeName(v) + " " + packet.PyStr(v)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case int64, int, *big.Int:
		return "an integer"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case *packet.Map:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// ParseBool reads a boolean the way an operator means it: YAML booleans,
// 0/1, and the strings true/false/yes/no/on/off/y/n/1/0 in any case. Upstream
// used Python truthiness, where the string "false" is true (docs/compat.md).
func ParseBool(raw any) (bool, bool) {
	switch x := raw.(type) {
	case bool:
		return x, true
	case int64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "on", "y", "1":
			return true, true
		case "false", "no", "off", "n", "0", "":
			return false, true
		}
	}
	return false, false
}

func (d *decoder) decodeValue(v reflect.Value, raw any, path string) {
	t := v.Type()
	if t == mapType {
		m, ok := raw.(*packet.Map)
		if !ok {
			d.errf(path, "expected a mapping, got %s", typeName(raw))
			return
		}
		v.Set(reflect.ValueOf(m))
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		if raw != nil {
			v.Set(reflect.ValueOf(raw))
		} else {
			v.SetZero()
		}
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decodeValue(p.Elem(), raw, path)
		v.Set(p)
	case reflect.String:
		switch x := raw.(type) {
		case string:
			v.SetString(x)
		case bool, int64, float64, *big.Int:
			v.SetString(packet.PyStr(x)) // upstream applies str()
		default:
			d.errf(path, "expected a string, got %s", typeName(raw))
		}
	case reflect.Bool:
		b, ok := ParseBool(raw)
		if !ok {
			d.errf(path, "expected a boolean (true/false), got %s", shown(raw))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := toInt(raw)
		if !ok {
			d.errf(path, "expected an integer, got %s", shown(raw))
			return
		}
		if v.OverflowInt(n) {
			d.errf(path, "integer %d out of range", n)
			return
		}
		v.SetInt(n)
	case reflect.Float64, reflect.Float32:
		if t == secondsType {
			f, err := parseSeconds(raw)
			if err != nil {
				d.errf(path, "%v", err)
				return
			}
			v.SetFloat(f)
			return
		}
		f, ok := toFloat(raw)
		if !ok {
			d.errf(path, "expected a number, got %s", shown(raw))
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		list, ok := raw.([]any)
		if !ok {
			d.errf(path, "expected a list, got %s", typeName(raw))
			return
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, item := range list {
			d.decodeValue(s.Index(i), item, fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		m, ok := raw.(*packet.Map)
		if !ok || t.Key().Kind() != reflect.String {
			d.errf(path, "expected a mapping, got %s", typeName(raw))
			return
		}
		out := reflect.MakeMapWithSize(t, m.Len())
		for _, e := range m.Entries() {
			ev := reflect.New(t.Elem()).Elem()
			d.decodeValue(ev, e.Value, join(path, e.Key))
			out.SetMapIndex(reflect.ValueOf(e.Key), ev)
		}
		v.Set(out)
	case reflect.Struct:
		m, ok := raw.(*packet.Map)
		if !ok {
			d.errf(path, "expected a mapping, got %s", typeName(raw))
			return
		}
		d.decodeStruct(v, m, path)
	default:
		d.errf(path, "unsupported config field type %s", t)
	}
}

func toInt(raw any) (int64, bool) {
	switch x := raw.(type) {
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return int64(x), true
		}
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func toFloat(raw any) (float64, bool) {
	switch x := raw.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// describe lists the config keys of t for docs, with defaults from def.
func describe(t reflect.Type, def reflect.Value, prefix string) []Field {
	var out []Field
	for _, fi := range structFields(t) {
		ft := t.FieldByIndex(fi.index).Type
		dv := def.FieldByIndex(fi.index)
		if ft.Kind() == reflect.Struct && ft != mapType {
			out = append(out, describe(ft, dv, join(prefix, fi.key))...)
			continue
		}
		f := Field{Key: join(prefix, fi.key), Type: kindName(ft), Required: fi.required, Enum: fi.enum, Doc: fi.doc,
			Advanced: fi.tag.Get("advanced") == "true", Deprecated: fi.tag.Get("deprecated"), Secret: fi.tag.Get("secret") == "true"}
		if ex := fi.tag.Get("example"); ex != "" {
			f.Examples = strings.Split(ex, "|")
		}
		if !fi.required && dv.IsValid() && !(dv.Kind() == reflect.Pointer && dv.IsNil()) {
			f.Default = dv.Interface()
		}
		out = append(out, f)
	}
	return out
}

func kindName(t reflect.Type) string {
	if t == mapType {
		return "object"
	}
	if t == secondsType {
		return "seconds"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return kindName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "int"
	case reflect.Float64, reflect.Float32:
		return "float"
	case reflect.Slice:
		return "list of " + kindName(t.Elem())
	case reflect.Map:
		return "map of " + kindName(t.Elem())
	case reflect.Interface:
		return "any"
	case reflect.Struct:
		return "object"
	}
	return t.String()
}
