package ionodes

import (
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// frameLike is an in-process payload: it prints a summary, sinks refuse it.
type frameLike struct{}

func (frameLike) AppendPyJSON(b []byte, _ packet.Style) []byte { return append(b, `"<frame>"`...) }

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
