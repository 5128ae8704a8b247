package packet

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString: every string encodes to ASCII-only JSON (and to UTF-8
// JSON under ensure_ascii=False) that decodes
// back to the same string (invalid UTF-8 becomes U+FFFD, as Python cannot
// hold it anyway).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "hello", "é<&>\"\\\n\x01\x7f", "\U0001F600", "\xff\xfe", "a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		for _, c := range b {
			if c >= 0x7f || c < 0x20 {
				t.Fatalf("non-ASCII or control byte %#x in %q", c, b)
			}
		}
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if !utf8.ValidString(s) {
			// each invalid byte becomes one U+FFFD
			want = ""
			for i := 0; i < len(s); {
				r, n := utf8.DecodeRuneInString(s[i:])
				want += string(r)
				i += n
			}
		}
		if back != want {
			t.Fatalf("round trip %q -> %q -> %q", s, b, back)
		}
		u := AppendStringUTF8(nil, s) // ensure_ascii=False: the same text
		if err := json.Unmarshal(u, &back); err != nil || back != want || !utf8.Valid(u) {
			t.Fatalf("UTF-8 round trip %q -> %q -> %q, %v", s, u, back, err)
		}
	})
}
