package ionodes

import (
	"fmt"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// appendRecord serialises what upstream's sinks write for a packet:
// json.dumps of the payload (body: payload) or of the envelope {packet_id,
// ts, kind, source_id, payload, meta} with meta {} when empty (body:
// packet), with o's ensure_ascii and indent. Values that are not JSON
// (in-process frames, bytes, structs) are an error naming their path, as
// upstream raises TypeError; the error names the packet's id, kind and
// source as upstream's P7 messages do.
func appendRecord(b []byte, p *packet.Packet, bodyPacket bool, o packet.JSONOptions) ([]byte, error) {
	o.Strict = true
	var out []byte
	var err error
	if bodyPacket {
		o.Path = "packet"
		out, err = packet.AppendPacketJSON(b, p, o)
	} else {
		o.Path = "payload"
		out, err = packet.AppendJSONOpts(b, p.Payload, o)
	}
	if err != nil {
		return b, fmt.Errorf("packet %s (kind %q, source_id %q): %w", p.ID, p.Kind, p.SourceID, err)
	}
	return out, nil
}
