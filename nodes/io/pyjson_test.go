package ionodes

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Goldens are json.dumps output from CPython 3 (json.dumps(v,
// ensure_ascii=..., indent=...)), stored JSON-quoted so that the test file
// stays ASCII.
func TestAppendPyJSONMatchesPython(t *testing.T) {
	unicode := packet.MapOf("msg", "h\u00e9llo \u2028 \U0001F600 \x7f \x01 \"q\" \\ / \t\n")
	numbers := packet.MapOf("n", []any{int64(1), 2.5, 1e20, math.Copysign(0, -1), 1e-05, 0.1, int64(123456789012345678), true, false, nil},
		"nan", math.NaN(), "inf", math.Inf(1), "ninf", math.Inf(-1))
	nested := packet.MapOf("a", []any{int64(1), packet.MapOf("b", []any{})}, "c", packet.NewMap(0), "d", []any{[]any{}})
	cases := []struct {
		name   string
		v      any
		ascii  bool
		indent int
		want   string // JSON-quoted
	}{
		{"unicode/line", unicode, false, -1, `"{\"msg\": \"h\u00e9llo \u2028 \ud83d\ude00 \u007f \\u0001 \\\"q\\\" \\\\ / \\t\\n\"}"`},
		{"unicode/ind2", unicode, false, 2, `"{\n  \"msg\": \"h\u00e9llo \u2028 \ud83d\ude00 \u007f \\u0001 \\\"q\\\" \\\\ / \\t\\n\"\n}"`},
		{"unicode/ascii/line", unicode, true, -1, `"{\"msg\": \"h\\u00e9llo \\u2028 \\ud83d\\ude00 \\u007f \\u0001 \\\"q\\\" \\\\ / \\t\\n\"}"`},
		{"unicode/ascii/ind0", unicode, true, 0, `"{\n\"msg\": \"h\\u00e9llo \\u2028 \\ud83d\\ude00 \\u007f \\u0001 \\\"q\\\" \\\\ / \\t\\n\"\n}"`},
		{"numbers/line", numbers, false, -1, `"{\"n\": [1, 2.5, 1e+20, -0.0, 1e-05, 0.1, 123456789012345678, true, false, null], \"nan\": NaN, \"inf\": Infinity, \"ninf\": -Infinity}"`},
		{"numbers/ind2", numbers, false, 2, `"{\n  \"n\": [\n    1,\n    2.5,\n    1e+20,\n    -0.0,\n    1e-05,\n    0.1,\n    123456789012345678,\n    true,\n    false,\n    null\n  ],\n  \"nan\": NaN,\n  \"inf\": Infinity,\n  \"ninf\": -Infinity\n}"`},
		{"nested/line", nested, false, -1, `"{\"a\": [1, {\"b\": []}], \"c\": {}, \"d\": [[]]}"`},
		{"nested/ind2", nested, false, 2, `"{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": {},\n  \"d\": [\n    []\n  ]\n}"`},
		{"nested/ind0", nested, true, 0, `"{\n\"a\": [\n1,\n{\n\"b\": []\n}\n],\n\"c\": {},\n\"d\": [\n[]\n]\n}"`},
		{"scalar/ind2", "just a string", false, 2, `"\"just a string\""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want string
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatalf("bad golden: %v", err)
			}
			got, err := appendPyJSON(nil, tc.v, jsonStyle{ascii: tc.ascii, indent: tc.indent}, "payload")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

type frameLike struct{}

func (frameLike) AppendPyJSON(b []byte, _ packet.Style) []byte { return append(b, `"<frame>"`...) }

func TestAppendPyJSONRejectsNonJSON(t *testing.T) {
	cases := []struct {
		name string
		v    any
		path string
	}{
		{"struct", packet.MapOf("x", struct{}{}), "payload.x"},
		{"bytes", []any{int64(1), []byte("ab")}, "payload[1]"},
		{"frame", packet.MapOf("f", frameLike{}), "payload.f"},
		{"func", func() {}, "payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := appendPyJSON(nil, tc.v, jsonStyle{indent: -1}, "payload")
			var nj *notJSONError
			if !errors.As(err, &nj) || nj.path != tc.path {
				t.Fatalf("err = %v, want notJSONError at %s", err, tc.path)
			}
		})
	}
}

func TestAppendPyJSONGoTypes(t *testing.T) {
	v := map[string]any{"b": []string{"x"}, "a": int32(3), "c": float32(0.5), "d": uint8(7), "e": []int(nil)}
	got, err := appendPyJSON(nil, v, jsonStyle{indent: -1}, "payload")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a": 3, "b": ["x"], "c": 0.5, "d": 7, "e": null}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendStringUTF8InvalidBytes(t *testing.T) {
	got := string(packet.AppendStringUTF8(nil, "a\xffb"))
	if got != "\"a\ufffdb\"" {
		t.Errorf("got %q", got)
	}
}

func TestTruthyAndIdempotencyKey(t *testing.T) {
	p := &packet.Packet{ID: "pid"}
	cases := []struct {
		meta any
		want string
	}{
		{nil, "pid"},
		{"", "pid"},
		{"k1", "k1"},
		{int64(0), "pid"},
		{int64(5), "5"},
		{false, "pid"},
		{true, "True"},
		{1.5, "1.5"},
		{[]any{}, "pid"},
		{" ", " "},
	}
	for _, tc := range cases {
		q := p.Copy()
		q.Meta = packet.MapOf("idempotency_key", tc.meta)
		if got := idempotencyKey(q); got != tc.want {
			t.Errorf("meta.idempotency_key=%#v: key %q, want %q", tc.meta, got, tc.want)
		}
	}
	if got := idempotencyKey(p); got != "pid" {
		t.Errorf("no meta: %q", got)
	}
}

func TestPyFormat(t *testing.T) {
	f := map[string]any{"seq": int64(42), "kind": "event", "source_id": "cam01", "big": int64(1234567), "neg": int64(-42), "s": "abcdef"}
	cases := []struct{ tmpl, want, err string }{
		{"{seq:06d}_{source_id}_{kind}.json", "000042_cam01_event.json", ""},
		{"{seq:03d}_{kind}.json", "042_event.json", ""},
		{"{seq}", "42", ""},
		{"{seq:+d}", "+42", ""},
		{"{big:_d}", "1_234_567", ""},
		{"{big:,d}", "1,234,567", ""},
		{"{seq:x}|{seq:#x}|{seq:#o}|{seq:#b}|{seq:X}", "2a|0x2a|0o52|0b101010|2A", ""},
		{"{seq:<5}|{seq:^7}|{seq:*>6}|{seq:=+8}|{seq:05}", "42   |  42   |****42|+     42|00042", ""},
		{"{neg:05d}", "-0042", ""},
		{"{s:s}|{s:<8}|{s:^9}|{s:>4}|{s:.2}|{s:x<6.3}", "abcdef|abcdef  | abcdef  |abcdef|ab|abcxxx", ""},
		{"{{literal}}_{kind!s}", "{literal}_event", ""},
		{"{nope}", "", "unknown field {nope}"},
		{"{seq:.2}", "", "precision not allowed"},
		{"{kind:d}", "", "unknown format code 'd'"},
		{"{seq!r}", "", "conversion !r"},
		{"{seq", "", "single '{'"},
		{"a}b", "", "single '}'"},
		{"{seq:{w}}", "", "nested"},
	}
	for _, tc := range cases {
		got, err := pyFormat(tc.tmpl, f)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.tmpl, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
}

func TestMaskURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"http://127.0.0.1:8080/events", "http://127.0.0.1:8080/events"},
		{"https://user:s3cret@example.com/api?x=1", "https://***:***@example.com/api?x=1"},
		{"http://user@example.com/", "http://***@example.com/"},
		{"http://us%40er:p%2Fw@h:1/p", "http://***:***@h:1/p"},
		{"not a url", "not a url"},
		{"http://u:pw@[::1:bad/x", "http://***:***@[::1:bad/x"},
		{"https://h/hook?token=s3cret&x=1", "https://h/hook?token=***&x=1"},
	}
	for _, tc := range cases {
		got := maskURL(tc.in)
		if got != tc.want {
			t.Errorf("maskURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "pw@") || strings.Contains(got, "p%2Fw") {
			t.Errorf("maskURL(%q) leaks the password: %q", tc.in, got)
		}
	}
}
