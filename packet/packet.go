// Package packet holds the unit of data that flows through a schnitzel graph.
//
// A Packet has the fields of upstream's StreamPacket, in the same order:
// packet_id, ts, kind, source_id, payload, meta. Packets are read-only once
// emitted: fan-out hands the same *Packet to every branch, so a node that
// wants to change one makes a copy first (Copy, then set fields).
package packet

import (
	"encoding/hex"
	"time"
)

// Packet is one message in a graph.
type Packet struct {
	ID       string // UUIDv4, lowercase, 36 characters
	TS       string // ISO-8601, upstream form: 2026-11-25T20:43:58.487035+00:00
	Kind     string // payload semantics: frame, event, detection, raw, ...
	SourceID string // origin stream id
	Payload  any    // JSON-like (nil, bool, int64, float64, string, []any, *Map) or an in-process value
	Meta     *Map   // string -> JSON-like; nil means empty

	// Nack, when set, tells the packet's origin (a durable queue source,
	// say) that the packet was not delivered and should be retried. It is
	// carried by Copy and never serialised. Calling it is optional: a packet
	// that is neither acked nor nacked comes back after its lease expires.
	Nack func(err error)
	// Ack, when set, tells the packet's origin that the packet is
	// committed downstream (stored in a durable queue): an origin that can
	// only acknowledge once the data is safe (an MQTT QoS 1/2 message, an
	// HTTP ingest request answered 202) does so now. A committing sink
	// calls it after its commit; with fan-out each such sink may call it,
	// so the origin acts on the first call. Carried by Copy and Derive,
	// never serialised.
	Ack func()
}

// New makes a packet the way upstream's StreamPacket.new does: a fresh
// UUIDv4, ts = now unless given, meta shallow-copied.
func New(kind, sourceID string, payload any, ts string, meta *Map) *Packet {
	if ts == "" {
		ts = Now()
	}
	var m *Map
	if meta != nil {
		m = meta.Clone(0)
	}
	return &Packet{ID: NewID(), TS: ts, Kind: kind, SourceID: sourceID, Payload: payload, Meta: m}
}

// Copy returns a shallow copy that keeps packet_id and ts (upstream's
// dataclasses.replace). Payload and Meta are shared: replace them, do not
// mutate them.
func (p *Packet) Copy() *Packet {
	c := *p
	return &c
}

// MetaValue returns meta[key].
func (p *Packet) MetaValue(key string) (any, bool) { return p.Meta.Get(key) }

// NewID returns a random UUIDv4 string. The bits come from the runtime's
// per-thread ChaCha8 generator (math/rand/v2), which is seeded from the OS
// and is far cheaper per call than a getrandom syscall.
func NewID() string {
	var buf [36]byte
	fillID(&buf)
	return string(buf[:])
}

// FormatUUID renders 16 bytes in the canonical 8-4-4-4-12 lowercase form.
func FormatUUID(u [16]byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return string(buf[:])
}

// Now returns the current UTC time in upstream's form (Python
// datetime.isoformat on an aware UTC datetime).
func Now() string { return FormatTS(time.Now()) }

// FormatTS renders t in UTC the way Python's isoformat does: microsecond
// precision, the fraction left out when it is zero, "+00:00" not "Z".
func FormatTS(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05") + "+00:00"
	}
	return t.Format("2006-01-02T15:04:05.000000") + "+00:00"
}

// Local is implemented by values that exist only inside this process: a
// decoded video frame that a detector hands to the snapshot node in meta.
// Writers of whole packets (PrintSink, the JSON file and HTTP sinks, the
// durable queue) leave meta entries holding one out, so an event can go
// anywhere without its frame, and with meta as upstream writes it.
type Local interface{ LocalOnly() }

// PortableMeta returns the packet's meta without entries whose value is
// Local: meta itself (no copy) when it holds none.
func (p *Packet) PortableMeta() *Map {
	m := p.Meta
	for i, e := range m.Entries() {
		if _, ok := e.Value.(Local); ok {
			c := NewMap(m.Len() - 1)
			c.kv = append(c.kv, m.kv[:i]...)
			for _, e := range m.kv[i+1:] {
				if _, ok := e.Value.(Local); !ok {
					c.kv = append(c.kv, e)
				}
			}
			return c
		}
	}
	return m
}

// Sized is implemented by in-process values that hold a lot of memory (a
// decoded frame's pixels). The runtime bounds its queues by their bytes as
// well as by packet count, in graphs that carry them (plugin.LargePackets).
type Sized interface{ SizeBytes() int }

// Weight is the bytes of the Sized values a packet holds: the payload
// itself, the payload's top-level entries and meta's entries (where
// detectors hand frames on), and of a []byte payload (upstream's kind
// bytes: a blob read back by FileRefToBytesNode). Other values weigh
// nothing.
func Weight(p *Packet) int64 {
	var n int64
	switch x := p.Payload.(type) {
	case []byte:
		n += int64(len(x))
	case Sized:
		n += int64(x.SizeBytes())
	case *Map:
		for _, e := range x.Entries() {
			if s, ok := e.Value.(Sized); ok {
				n += int64(s.SizeBytes())
			}
		}
	}
	for _, e := range p.Meta.Entries() {
		if s, ok := e.Value.(Sized); ok {
			n += int64(s.SizeBytes())
		}
	}
	return n
}
