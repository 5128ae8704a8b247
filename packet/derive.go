package packet

import (
	"encoding/hex"
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
	var u [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = (u[6] & 0x0f) | 0x40
	u[8] = (u[8] & 0x3f) | 0x80
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
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
