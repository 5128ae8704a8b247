package packet

import (
	"math"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		in, want string // want is the Python-compatible re-encoding
		err      bool
	}{
		{in: `{"b":1,"a":[1,2.5,null,true,false,"x"]}`, want: `{"b":1,"a":[1,2.5,null,true,false,"x"]}`},
		{in: ` { "a" : 1 , "a" : 2 } `, want: `{"a":2}`},
		{in: `"caf\u00e9 \ud83d\ude00"`, want: `"caf\u00e9 \ud83d\ude00"`},
		{in: `"lone \ud800 surrogate"`, want: `"lone \ufffd surrogate"`},
		{in: `[NaN,Infinity,-Infinity,1e400]`, want: `[NaN,Infinity,-Infinity,Infinity]`},
		{in: `123456789012345678901234567890`, want: `123456789012345678901234567890`},
		{in: `-0.0`, want: `-0.0`},
		{in: `1E2`, want: `100.0`},
		{in: `"tab\tnl\n"`, want: `"tab\tnl\n"`},
		{in: `{"a":1,}`, err: true},
		{in: `[1 2]`, err: true},
		{in: `01`, err: true},
		{in: `"unterminated`, err: true},
		{in: `{"a":1} x`, err: true},
		{in: "\"raw\ttab\"", err: true},
		{in: ``, err: true},
	}
	for _, tc := range tests {
		v, err := DecodeJSON([]byte(tc.in))
		if tc.err {
			if err == nil {
				t.Errorf("DecodeJSON(%q) = %v, want error", tc.in, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("DecodeJSON(%q): %v", tc.in, err)
			continue
		}
		if got := string(AppendJSON(nil, v, Compact)); got != tc.want {
			t.Errorf("DecodeJSON(%q) re-encodes to %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzDecodeJSON checks the row decoder never panics and that what it
// accepts re-encodes to text it decodes to the same encoding again.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",null]}`, `NaN`, `"\ud83d\ude00"`, `[[[[]]]]`, `{"k":{"k":{}}}`, `-1e-7`, `1` + string(make([]byte, 30))} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeJSON(b)
		if err != nil {
			return
		}
		enc := AppendJSON(nil, v, Compact)
		v2, err := DecodeJSON(enc)
		if err != nil {
			t.Fatalf("re-encoding %s of %q does not decode: %v", enc, b, err)
		}
		if enc2 := AppendJSON(nil, v2, Compact); string(enc2) != string(enc) {
			if f, ok := v.(float64); ok && math.IsNaN(f) {
				return
			}
			t.Fatalf("unstable: %s then %s", enc, enc2)
		}
	})
}
