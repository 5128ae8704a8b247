package packet

import (
	"encoding/hex"
	"math/rand/v2"
	"unsafe"
)

// derived3 holds a packet, its meta and its id in one allocation: hot
// paths (BurstNode) make millions of packets, and one allocation instead of
// four halves their cost.
type derived3 struct {
	p  Packet
	m  Map
	kv [3]KV
	id [36]byte
}

// Derive returns a new packet with a fresh id that carries p's ts, kind,
// source_id, payload (shared) and Nack, and a copy of p's meta with room for
// extra more keys.
func Derive(p *Packet, extra int) *Packet {
	n := p.Meta.Len() + extra
	if n > len(derived3{}.kv) {
		q := p.Copy()
		q.ID = NewID()
		q.Meta = p.Meta.Clone(extra)
		return q
	}
	d := &derived3{p: *p}
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
