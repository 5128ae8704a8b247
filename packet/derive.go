package packet

import (
	"math/rand/v2"
	"unsafe"
)

// derived holds a packet, its meta and its id in one allocation: hot
// paths (BurstNode) make millions of packets, and one allocation instead of
// four halves their cost.
type derived struct {
	p    Packet
	m    Map
	kv   [2]KV // 2 keeps the struct in the 256-byte size class
	id   [36]byte
	ival int64
}

// Derive returns a new packet with a fresh id that carries p's ts, kind,
// source_id, payload (shared) and Nack, and a copy of p's meta with room for
// extra more keys.
func Derive(p *Packet, extra int) *Packet {
	n := p.Meta.Len() + extra
	if n > len(derived{}.kv) {
		q := p.Copy()
		q.ID = NewID()
		q.Meta = p.Meta.Clone(extra)
		return q
	}
	d := &derived{p: *p}
	d.m.kv = d.kv[:p.Meta.Len():len(d.kv)]
	copy(d.m.kv, p.Meta.Entries())
	d.p.Meta = &d.m
	fillID(&d.id)
	// The id bytes live inside d and are never written again.
	d.p.ID = unsafe.String(&d.id[0], len(d.id))
	return &d.p
}

// fillID writes a random UUIDv4 in canonical form.
func fillID(buf *[36]byte) {
	a, b := rand.Uint64(), rand.Uint64()
	a = a&^(0xf<<12) | 0x4<<12 // version 4 in byte 6's high nibble
	b = b&^(0x3<<62) | 0x2<<62 // RFC 4122 variant in byte 8's top bits
	// Hex-encode the 16 bytes (a: bytes 0-7, b: bytes 8-15, big-endian)
	// straight into the 8-4-4-4-12 layout.
	const hexdigits = "0123456789abcdef"
	pos := [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}
	for i := 0; i < 8; i++ {
		x := byte(a >> (56 - 8*i))
		buf[pos[i]], buf[pos[i]+1] = hexdigits[x>>4], hexdigits[x&0xf]
		y := byte(b >> (56 - 8*i))
		buf[pos[8+i]], buf[pos[8+i]+1] = hexdigits[y>>4], hexdigits[y&0xf]
	}
	buf[8], buf[13], buf[18], buf[23] = '-', '-', '-', '-'
}

// DeriveSeq is Derive plus meta[key] = seq, with the boxed integer kept in
// the same allocation (BurstNode's burst_seq): boxing an int64 into an
// interface would otherwise cost one more allocation per packet.
func DeriveSeq(p *Packet, key string, seq int64) *Packet {
	if p.Meta.Len()+1 > len(derived{}.kv) {
		q := Derive(p, 1)
		q.Meta.Set(key, seq)
		return q
	}
	q := Derive(p, 1)
	d := (*derived)(unsafe.Pointer(q)) // q is the first field of a derived
	d.ival = seq
	d.m.Set(key, boxInt(&d.ival))
	return q
}

// eface is the layout of an empty interface.
type eface struct{ typ, data unsafe.Pointer }

var int64Type = func() unsafe.Pointer {
	var x any = int64(1 << 40)
	return (*eface)(unsafe.Pointer(&x)).typ
}()

// boxInt returns an interface holding *p's value without copying it to a
// new heap object. *p must never change afterwards (boxed values are
// immutable in Go), and p must point into the heap.
func boxInt(p *int64) any {
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ = int64Type
	e.data = unsafe.Pointer(p)
	return v
}

// Slab allocates derived packets 64 at a time for one goroutine (a node):
// one allocation and one bulk clear per 64 packets instead of one each.
// A slab stays alive while any of its packets does, so memory stays bounded
// by the inboxes (a few slabs per queued batch). Not safe for concurrent use.
type Slab struct {
	free []derived
}

const slabSize = 64

func (s *Slab) next() *derived {
	if len(s.free) == 0 {
		s.free = make([]derived, slabSize)
	}
	d := &s.free[0]
	s.free = s.free[1:]
	return d
}

// DeriveSeq is packet.DeriveSeq using the slab.
func (s *Slab) DeriveSeq(p *Packet, key string, seq int64) *Packet {
	if p.Meta.Len()+1 > len(derived{}.kv) {
		return DeriveSeq(p, key, seq)
	}
	d := s.next()
	d.p = *p
	d.m.kv = d.kv[:p.Meta.Len():len(d.kv)]
	copy(d.m.kv, p.Meta.Entries())
	d.p.Meta = &d.m
	fillID(&d.id)
	d.p.ID = unsafe.String(&d.id[0], len(d.id))
	d.ival = seq
	d.m.Set(key, boxInt(&d.ival))
	return &d.p
}
