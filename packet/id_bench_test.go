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
		buf = AppendPacket(buf[:0], p, Spaced)
	}
	b.SetBytes(int64(len(buf)))
}
