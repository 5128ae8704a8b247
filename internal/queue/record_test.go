package queue

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

type flag bool

// RecordOf stores what the file and HTTP sinks accept, in Python's compact
// form, and refuses the rest naming the path.
func TestRecordOfUsesTheSinksRule(t *testing.T) {
	cases := []struct {
		name          string
		payload, meta any
		want, wantErr string
	}{
		{"go types", packet.MapOf("l", []string{"a"}, "f", flag(true), "n", []int(nil), "m", map[string]int{"b": 1, "a": 2}, "z", (*big.Int)(nil)),
			nil, `{"l":["a"],"f":true,"n":[],"m":{"a":2,"b":1},"z":null}`, ""},
		{"struct in payload", packet.MapOf("x", []any{int64(1), struct{}{}}), nil, "", "payload.x[1] is not JSON-serializable (Go type struct {})"},
		{"bytes in meta", packet.MapOf(), packet.MapOf("raw", []byte("ab")), "", "meta.raw is not JSON-serializable (Go type []uint8)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &packet.Packet{ID: "id", Kind: "k", SourceID: "s", Payload: c.payload}
			if c.meta != nil {
				p.Meta = c.meta.(*packet.Map)
			}
			r, err := RecordOf(p, "")
			if c.wantErr != "" {
				if !errors.Is(err, ErrNotPortable) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want ErrNotPortable with %q", err, c.wantErr)
				}
				return
			}
			if err != nil || r.Payload != c.want || r.Meta != "{}" {
				t.Fatalf("got %s %s, %v; want %s {}", r.Payload, r.Meta, err, c.want)
			}
		})
	}
}
