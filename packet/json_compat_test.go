package packet

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

// Goldens are json.dumps output from CPython 3 (json.dumps(v,
// ensure_ascii=..., indent=...)), stored JSON-quoted so that the test file
// stays ASCII.
func TestAppendPyJSONMatchesPython(t *testing.T) {
	unicode := MapOf("msg", "h\u00e9llo \u2028 \U0001F600 \x7f \x01 \"q\" \\ / \t\n")
	numbers := MapOf("n", []any{int64(1), 2.5, 1e20, math.Copysign(0, -1), 1e-05, 0.1, int64(123456789012345678), true, false, nil},
		"nan", math.NaN(), "inf", math.Inf(1), "ninf", math.Inf(-1))
	nested := MapOf("a", []any{int64(1), MapOf("b", []any{})}, "c", NewMap(0), "d", []any{[]any{}})
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
			got, err := AppendJSONOpts(nil, tc.v, JSONOptions{EnsureASCII: tc.ascii, Pretty: tc.indent >= 0, Indent: tc.indent, Strict: true, Path: "payload"})
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

func (frameLike) AppendPyJSON(b []byte, _ Style) []byte { return append(b, `"<frame>"`...) }

func TestAppendPyJSONRejectsNonJSON(t *testing.T) {
	cases := []struct {
		name string
		v    any
		path string
	}{
		{"struct", MapOf("x", struct{}{}), "payload.x"},
		{"bytes", []any{int64(1), []byte("ab")}, "payload[1]"},
		{"frame", MapOf("f", frameLike{}), "payload.f"},
		{"func", func() {}, "payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := AppendJSONOpts(nil, tc.v, JSONOptions{Strict: true, Path: "payload"})
			var je *JSONError
			if !errors.As(err, &je) || je.Path != tc.path || je.TooDeep {
				t.Fatalf("err = %v, want JSONError at %s", err, tc.path)
			}
		})
	}
}

func TestAppendPyJSONGoTypes(t *testing.T) {
	v := map[string]any{"b": []string{"x"}, "a": int32(3), "c": float32(0.5), "d": uint8(7), "e": []int(nil), "f": map[string]bool(nil)}
	got, err := AppendJSONOpts(nil, v, JSONOptions{Strict: true, Path: "payload"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a": 3, "b": ["x"], "c": 0.5, "d": 7, "e": [], "f": {}}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendStringUTF8InvalidBytes(t *testing.T) {
	got := string(AppendStringUTF8(nil, "a\xffb"))
	if got != "\"a\ufffdb\"" {
		t.Errorf("got %q", got)
	}
}
