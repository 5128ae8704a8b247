package packet

import "testing"

func BenchmarkNewID(b *testing.B) {
	var buf [36]byte
	for i := 0; i < b.N; i++ {
		fillID(&buf)
	}
}

func BenchmarkDeriveSeq(b *testing.B) {
	p := &Packet{ID: NewID(), TS: "t", Kind: "k", SourceID: "s", Payload: "x"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = DeriveSeq(p, "burst_seq", int64(i))
	}
}

func BenchmarkSlabDeriveSeq(b *testing.B) {
	p := &Packet{ID: NewID(), TS: "t", Kind: "k", SourceID: "s", Payload: "x"}
	var s Slab
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = s.DeriveSeq(p, "burst_seq", int64(i))
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	p := &Packet{ID: NewID(), TS: "2026-11-25T20:43:58.487035+00:00", Kind: "demo", SourceID: "bench",
		Payload: MapOf("message", "hello", "value", int64(1)), Meta: MapOf("burst_seq", int64(123456))}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = AppendPacketJSON(buf[:0], p, JSONOptions{EnsureASCII: true})
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkAppendJSONMixed covers the slower shapes: nested containers,
// floats, non-ASCII text and Go-typed values reached through reflection.
func BenchmarkAppendJSONMixed(b *testing.B) {
	v := MapOf("dets", []any{
		MapOf("bbox", MapOf("x1", int64(16), "y1", int64(0), "x2", int64(26), "y2", int64(10)), "confidence", 0.875, "class_name", "person"),
		MapOf("bbox", MapOf("x1", int64(1), "y1", int64(2), "x2", int64(3), "y2", int64(4)), "confidence", 0.1, "class_name", "caf\u00e9 \u2713"),
	}, "zones", []string{"a", "b"}, "counts", map[string]int{"a": 1, "b": 2}, "ok", true, "note", nil)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendJSON(buf[:0], v, Spaced)
	}
	b.SetBytes(int64(len(buf)))
}
