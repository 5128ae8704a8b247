package packet

import (
	"math"
	"testing"
)

func TestPyFloat(t *testing.T) {
	cases := map[float64]string{
		1: "1.0", 0.75: "0.75", 1e-05: "1e-05", 1e16: "1e+16", 0.0001: "0.0001",
		123456789012345.6: "123456789012345.6", 1.5e16: "1.5e+16", -2.5: "-2.5",
		0: "0.0", 100: "100.0", 1e22: "1e+22", 1.2345e-7: "1.2345e-07", 0.1: "0.1",
		9999999999999998: "9999999999999998.0", 5e-324: "5e-324", 1e100: "1e+100",
		math.Copysign(0, -1): "-0.0", 0.30000000000000004: "0.30000000000000004",
	}
	for f, want := range cases {
		if got := PyFloat(f); got != want {
			t.Errorf("PyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestAppendJSONPythonCompatible(t *testing.T) {
	m := MapOf("message", "hello", "value", int64(1), "ratio", 0.5, "ok", true, "none", nil,
		"text", "é<&>\"\\\n\x01\x7f\U0001F600", "list", []any{int64(1), 2.0, "x"}, "nan", math.NaN(), "inf", math.Inf(-1))
	got := string(AppendJSON(nil, m, Spaced))
	want := `{"message": "hello", "value": 1, "ratio": 0.5, "ok": true, "none": null, "text": "\u00e9<&>\"\\\n\u0001\u007f\ud83d\ude00", "list": [1, 2.0, "x"], "nan": NaN, "inf": -Infinity}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := string(AppendJSON(nil, MapOf("a", []any{int64(1)}, "b", MapOf()), Compact)); got != `{"a":[1],"b":{}}` {
		t.Errorf("compact: %s", got)
	}
}

func TestAppendPacket(t *testing.T) {
	p := &Packet{ID: "9d52", TS: "2026-01-01T00:00:00+00:00", Kind: "demo", SourceID: "demo01",
		Payload: MapOf("message", "hello", "value", int64(1))}
	b, err := AppendPacketJSON(nil, p, JSONOptions{EnsureASCII: true})
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	want := `{"packet_id": "9d52", "ts": "2026-01-01T00:00:00+00:00", "kind": "demo", "source_id": "demo01", "payload": {"message": "hello", "value": 1}, "meta": {}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestNewIDIsUUIDv4(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 36 || id[14] != '4' || id[8] != '-' || id[23] != '-' || !(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') {
			t.Fatalf("not a UUIDv4: %s", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestDeriveCopiesMetaAndKeepsOriginal(t *testing.T) {
	for _, n := range []int{0, 2, 5} {
		meta := NewMap(n)
		for i := 0; i < n; i++ {
			meta.Set(string(rune('a'+i)), int64(i))
		}
		p := &Packet{ID: NewID(), TS: "t", Kind: "k", SourceID: "s", Payload: "x", Meta: meta}
		q := Derive(p, 1)
		q.Meta.Set("burst_seq", int64(7))
		if q.ID == p.ID || len(q.ID) != 36 || q.TS != "t" || q.Payload != "x" || q.Meta.Len() != n+1 || p.Meta.Len() != n {
			t.Errorf("n=%d: derived %+v from %+v", n, q, p)
		}
		if v, _ := q.Meta.Get("burst_seq"); v != int64(7) {
			t.Errorf("n=%d: meta not set", n)
		}
	}
}

func TestDeriveSeqBoxesTheInteger(t *testing.T) {
	p := &Packet{ID: NewID(), Meta: MapOf("a", "x")}
	var qs []*Packet
	for i := int64(0); i < 1000; i++ {
		qs = append(qs, DeriveSeq(p, "burst_seq", i*1_000_003))
	}
	for i, q := range qs {
		v, _ := q.Meta.Get("burst_seq")
		if n, ok := v.(int64); !ok || n != int64(i)*1_000_003 {
			t.Fatalf("packet %d: burst_seq = %#v", i, v)
		}
		if got := string(AppendJSON(nil, q.Meta, Compact)); got != `{"a":"x","burst_seq":`+PyStr(int64(i)*1_000_003)+`}` {
			t.Fatalf("json %s", got)
		}
	}
	if q := DeriveSeq(&Packet{Meta: MapOf("a", 1, "b", 2, "c", 3)}, "k", 5); q.Meta.Len() != 4 {
		t.Fatal("large meta fallback")
	}
}

type localThing struct{}

func (localThing) LocalOnly()     {}
func (localThing) String() string { return "<local>" }

func TestPortableMetaLeavesLocalValuesOut(t *testing.T) {
	cases := []struct {
		name string
		meta *Map
		want string
	}{
		{"nil", nil, `{}`},
		{"none local", MapOf("a", int64(1), "b", "x"), `{"a": 1, "b": "x"}`},
		{"first", MapOf("frame", localThing{}, "a", int64(1)), `{"a": 1}`},
		{"middle and last", MapOf("a", int64(1), "frame", localThing{}, "b", "x", "f2", localThing{}), `{"a": 1, "b": "x"}`},
		{"only", MapOf("frame", localThing{}), `{}`},
		// a Local value nested deeper is the writer's business (a payload may hold frames)
		{"nested kept", MapOf("m", MapOf("frame", localThing{})), `{"m": {"frame": "<local>"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &Packet{ID: "i", TS: "t", Kind: "k", SourceID: "s", Payload: MapOf(), Meta: c.meta}
			b, err := AppendPacketJSON(nil, p, JSONOptions{EnsureASCII: true})
			if err != nil {
				t.Fatal(err)
			}
			got := string(b)
			want := `{"packet_id": "i", "ts": "t", "kind": "k", "source_id": "s", "payload": {}, "meta": ` + c.want + `}`
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if c.name == "none local" && p.PortableMeta() != c.meta {
				t.Error("meta without Local values was copied")
			}
		})
	}
	m := MapOf("a", int64(1), "frame", localThing{})
	p := &Packet{Meta: m}
	_ = p.PortableMeta()
	if m.Len() != 2 {
		t.Fatal("PortableMeta changed the packet's own meta")
	}
}
