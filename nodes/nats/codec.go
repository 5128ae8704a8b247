package natsnodes

import (
	"errors"
	"fmt"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// encodeOpts is the queue's row encoding (compact, ASCII, strict): frames
// and bytes are refused with the path that holds them, as the SQLite queue
// refuses them. BytesToFileRefNode upstream turns bytes into a reference.
var encodeOpts = packet.JSONOptions{Style: packet.Compact, EnsureASCII: true, Strict: true, Path: "packet"}

// encodePacket is the message body: the packet envelope upstream's packet
// sinks write ({packet_id, ts, kind, source_id, payload, meta}).
func encodePacket(b []byte, p *packet.Packet) ([]byte, error) {
	out, err := packet.AppendPacketJSON(b, p, encodeOpts)
	if err != nil {
		return b, fmt.Errorf("packet %s (kind %q, source_id %q) is not portable JSON: %w", p.ID, p.Kind, p.SourceID, err)
	}
	return out, nil
}

// decodePacket reads a body encodePacket wrote; anything else (not JSON,
// not an object, no packet_id) is an error, and the source dead-letters it.
func decodePacket(b []byte) (*packet.Packet, error) {
	v, err := packet.DecodeJSON(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(*packet.Map)
	if !ok {
		return nil, errors.New("body is not a JSON object")
	}
	p := &packet.Packet{}
	for _, f := range []struct {
		key string
		dst *string
	}{{"packet_id", &p.ID}, {"ts", &p.TS}, {"kind", &p.Kind}, {"source_id", &p.SourceID}} {
		s, ok := m.GetString(f.key)
		if !ok {
			return nil, fmt.Errorf("body has no string %q: not a schnitzel packet", f.key)
		}
		*f.dst = s
	}
	if p.ID == "" {
		return nil, errors.New("body has an empty packet_id")
	}
	p.Payload, _ = m.Get("payload")
	if meta, ok := m.Get("meta"); ok {
		if mm, ok := meta.(*packet.Map); ok && mm.Len() > 0 {
			p.Meta = mm
		}
	}
	return p, nil
}
