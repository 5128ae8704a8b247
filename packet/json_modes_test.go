package packet

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

type (
	namedBool   bool
	namedInt    int
	namedStr    string
	namedFloat  float64
	namedSlice  []int
	namedMap    map[string]int
	plainStruct struct{ A int }
	stringer    struct{}
)

func (stringer) String() string { return "<stringer>" }

type summary struct{}

func (summary) AppendPyJSON(b []byte, _ Style) []byte { return append(b, `"<summary>"`...) }

// goldenValues pairs Go values with json.dumps(v, default=str) of the
// Python value they stand for (CPython 3, ASCII, default separators).
// notJSON marks values Python's json.dumps refuses without default=str.
var goldenValues = []struct {
	name    string
	v       any
	want    string
	notJSON bool
}{
	{"nil", nil, `null`, false},
	{"bool", true, `true`, false},
	{"named bool", namedBool(true), `true`, false},
	{"named int", namedInt(-3), `-3`, false},
	{"named string", namedStr("s\u00e9"), `"s\u00e9"`, false},
	{"named float", namedFloat(0.5), `0.5`, false},
	{"int8", int8(-8), `-8`, false},
	{"uint64 max", uint64(math.MaxUint64), `18446744073709551615`, false},
	{"int64 min", int64(math.MinInt64), `-9223372036854775808`, false},
	{"duration", time.Duration(5), `5`, false},
	{"float32", float32(0.5), `0.5`, false},
	{"NaN", math.NaN(), `NaN`, false},
	{"+Inf", math.Inf(1), `Infinity`, false},
	{"-Inf", math.Inf(-1), `-Infinity`, false},
	{"-0.0", math.Copysign(0, -1), `-0.0`, false},
	{"1e16", 1e16, `1e+16`, false},
	{"big int", bigInt("123456789012345678901234567890"), `123456789012345678901234567890`, false},
	{"nil big int", (*big.Int)(nil), `null`, false},
	{"nil *Map", (*Map)(nil), `null`, false},
	{"empty Map", NewMap(0), `{}`, false},
	{"unicode", "\u00e9\u2028\U0001F600\x7f\x01\xff", `"\u00e9\u2028\ud83d\ude00\u007f\u0001\ufffd"`, false},
	{"nil []any", []any(nil), `[]`, false},
	{"nil []int", []int(nil), `[]`, false},
	{"nil named slice", namedSlice(nil), `[]`, false},
	{"[]string", []string{"a"}, `["a"]`, false},
	{"array", [2]int{1, 2}, `[1, 2]`, false},
	{"[]named bool", []namedBool{true, false}, `[true, false]`, false},
	{"nil map", map[string]any(nil), `{}`, false},
	{"map sorted", map[string]int{"b": 1, "a": 2}, `{"a": 2, "b": 1}`, false},
	{"named map", namedMap{"x": 1}, `{"x": 1}`, false},
	{"named key", map[namedStr]int{"k": 1}, `{"k": 1}`, false},
	{"nested", MapOf("a", []any{int64(1), MapOf("b", namedBool(false), "c", []int(nil))}), `{"a": [1, {"b": false, "c": []}]}`, false},
	{"bytes", []byte("ab"), `"b'ab'"`, true},
	{"bytes quoting", []byte("a'b\x00"), `"b\"a'b\\x00\""`, true},
	{"bytes escapes", []byte("q\"\\\n\xff"), `"b'q\"\\\\\\n\\xff'"`, true},
	{"struct", plainStruct{1}, `"{1}"`, true},
	{"Stringer", stringer{}, `"<stringer>"`, true},
	{"error", errors.New("boom"), `"boom"`, true},
	{"Marshaler", summary{}, `"<summary>"`, true},
	{"in a list", []any{int64(1), plainStruct{2}}, `[1, "{2}"]`, true},
}

func bigInt(s string) *big.Int {
	n, _ := new(big.Int).SetString(s, 10)
	return n
}

// TestLenientIsPythonDefaultStr: PrintSink's mode, json.dumps(v,
// default=str).
func TestLenientIsPythonDefaultStr(t *testing.T) {
	for _, c := range goldenValues {
		if got := string(AppendJSON(nil, c.v, Spaced)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
		got, err := AppendJSONOpts(nil, c.v, JSONOptions{EnsureASCII: true})
		if err != nil || string(got) != c.want {
			t.Errorf("%s: AppendJSONOpts = %s, %v; want %s", c.name, got, err, c.want)
		}
	}
}

// TestStrictAgreesWithLenient: the sinks' mode writes the same bytes for
// every JSON value and refuses exactly the others, naming the path.
func TestStrictAgreesWithLenient(t *testing.T) {
	for _, c := range goldenValues {
		got, err := AppendJSONOpts([]byte("x"), c.v, JSONOptions{EnsureASCII: true, Strict: true, Path: "payload"})
		if c.notJSON {
			var je *JSONError
			if !errors.As(err, &je) || !strings.HasPrefix(je.Path, "payload") || string(got) != "x" {
				t.Errorf("%s: got %s, %v; want a JSONError and b unchanged", c.name, got, err)
			}
			continue
		}
		if err != nil || string(got) != "x"+c.want {
			t.Errorf("%s: got %s, %v; want %s", c.name, got, err, c.want)
		}
	}
}

func TestCycleIsAnErrorInBothModes(t *testing.T) {
	m := MapOf("a", int64(1))
	m.Set("self", []any{m})
	for _, strict := range []bool{false, true} {
		_, err := AppendJSONOpts(nil, m, JSONOptions{Strict: strict, Path: "payload"})
		var je *JSONError
		if !errors.As(err, &je) || !je.TooDeep || !strings.HasPrefix(je.Path, "payload.self[0].self[0]") {
			t.Errorf("strict=%v: err = %v", strict, err)
		}
	}
	p := &Packet{ID: "i", Payload: MapOf("m", m)}
	if _, err := AppendPacketJSON(nil, p, JSONOptions{}); err == nil || !strings.HasPrefix(err.Error(), "payload.m.self[0]") {
		t.Errorf("packet: err = %v", err)
	}
	if got := string(AppendJSON(nil, m, Compact)); !strings.HasPrefix(got, `"<.self[0].self[0]`) {
		t.Errorf("AppendJSON of a cycle: %.60s", got)
	}
}

// TestLayouts: separators and indent as json.dumps combines them.
func TestLayouts(t *testing.T) {
	v := MapOf("a", []any{int64(1), MapOf("b", []any{})})
	cases := []struct {
		o    JSONOptions
		want string
	}{
		{JSONOptions{}, `{"a": [1, {"b": []}]}`},
		{JSONOptions{Style: Compact}, `{"a":[1,{"b":[]}]}`},
		{JSONOptions{Style: Compact, Pretty: true, Indent: 1}, "{\n \"a\":[\n  1,\n  {\n   \"b\":[]\n  }\n ]\n}"},
		{JSONOptions{Pretty: true, Indent: 2}, "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ]\n}"},
	}
	for _, c := range cases {
		got, err := AppendJSONOpts(nil, v, c.o)
		if err != nil || string(got) != c.want {
			t.Errorf("%+v: got %q, %v; want %q", c.o, got, err, c.want)
		}
	}
}

// TestPacketEnvelopeLayouts: the one-line fast path and the general loop
// write what json.dumps writes for the envelope dict.
func TestPacketEnvelopeLayouts(t *testing.T) {
	p := &Packet{ID: "i\u00e9", TS: "t", Kind: "k", SourceID: "s", Payload: MapOf("x", int64(1))}
	cases := []struct {
		o    JSONOptions
		want string
	}{
		{JSONOptions{EnsureASCII: true}, `{"packet_id": "i\u00e9", "ts": "t", "kind": "k", "source_id": "s", "payload": {"x": 1}, "meta": {}}`},
		{JSONOptions{}, "{\"packet_id\": \"i\u00e9\", \"ts\": \"t\", \"kind\": \"k\", \"source_id\": \"s\", \"payload\": {\"x\": 1}, \"meta\": {}}"},
		{JSONOptions{Style: Compact, EnsureASCII: true}, `{"packet_id":"i\u00e9","ts":"t","kind":"k","source_id":"s","payload":{"x":1},"meta":{}}`},
		{JSONOptions{Style: Style{";", "="}}, "{\"packet_id\"=\"i\u00e9\";\"ts\"=\"t\";\"kind\"=\"k\";\"source_id\"=\"s\";\"payload\"={\"x\"=1};\"meta\"={}}"},
		{JSONOptions{Pretty: true, Indent: 1, EnsureASCII: true}, "{\n \"packet_id\": \"i\\u00e9\",\n \"ts\": \"t\",\n \"kind\": \"k\",\n \"source_id\": \"s\",\n \"payload\": {\n  \"x\": 1\n },\n \"meta\": {}\n}"},
	}
	for _, c := range cases {
		got, err := AppendPacketJSON(nil, p, c.o)
		if err != nil || string(got) != c.want {
			t.Errorf("%+v: got %q, %v; want %q", c.o, got, err, c.want)
		}
	}
	_, err := AppendPacketJSON(nil, &Packet{Payload: MapOf("f", summary{})}, JSONOptions{Strict: true, Path: "packet"})
	var je *JSONError
	if !errors.As(err, &je) || je.Path != "packet.payload.f" {
		t.Errorf("strict envelope: err = %v", err)
	}
}
