package queue

import (
	"fmt"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Record is one row to enqueue, in the packets table's terms.
type Record struct {
	Key      string // idempotency key; RecordOf derives it as upstream does
	PacketID string
	TS       string
	Kind     string
	SourceID string
	Payload  string // JSON text
	Meta     string // JSON text of the whole meta object
}

// size is the row's stored text in bytes, as the bounds count it (the same
// sum as sizeSQL).
func (r *Record) size(enqueuedAt string) int64 {
	return int64(len(r.Payload) + len(r.Meta) + len(r.PacketID) + len(r.TS) + len(r.Kind) + len(r.SourceID) + len(r.Key) + len(enqueuedAt))
}

const sizeSQL = `(octet_length(payload_json)+octet_length(meta_json)+octet_length(packet_id)+octet_length(ts)+octet_length(kind)+octet_length(source_id)+coalesce(octet_length(idempotency_key),0)+octet_length(enqueued_at))`

// Result is the outcome of enqueueing one record.
type Result struct {
	Seq       int64 // the row's seq; for a duplicate, the seq of the row that holds the key
	Duplicate bool  // the key was already queued, or acked within the dedup window: nothing stored
	Conflict  bool  // a duplicate whose payload differs from the queued row's (the new one was discarded)
}

// Key returns the idempotency key upstream's SqliteQueue.enqueue uses: the
// explicit key, else a truthy meta["idempotency_key"] (as Python str()),
// else the packet id; stripped of surrounding whitespace.
func Key(p *packet.Packet, explicit string) (string, error) {
	raw := explicit
	if raw == "" {
		if v, ok := p.Meta.Get("idempotency_key"); ok && packet.Truthy(v) {
			raw = packet.PyStr(v)
		} else {
			raw = p.ID
		}
	}
	k := strings.TrimSpace(raw)
	if k == "" {
		return "", fmt.Errorf("%w (kind=%s source_id=%s)", ErrEmptyKey, p.Kind, p.SourceID)
	}
	return k, nil
}

// RecordOf encodes p as a row: Python-compatible compact JSON (the bytes
// upstream's json.dumps(separators=(",", ":")) writes) and the key from
// Key. A payload or meta value that is not JSON-like (frames, bytes) is
// refused with ErrNotPortable, as upstream does since P7.1.
func RecordOf(p *packet.Packet, explicitKey string) (Record, error) {
	key, err := Key(p, explicitKey)
	if err != nil {
		return Record{}, err
	}
	opts := packet.JSONOptions{Style: packet.Compact, EnsureASCII: true, Strict: true, Path: "payload"}
	buf, err := packet.AppendJSONOpts(make([]byte, 0, 256), p.Payload, opts)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v (kind=%s source_id=%s)", ErrNotPortable, err, p.Kind, p.SourceID)
	}
	payload := string(buf)
	buf, opts.Path = buf[:0], "meta"
	if meta := p.PortableMeta(); meta == nil {
		buf = append(buf, "{}"...)
	} else if buf, err = packet.AppendJSONOpts(buf, meta, opts); err != nil {
		return Record{}, fmt.Errorf("%w: %v (kind=%s source_id=%s)", ErrNotPortable, err, p.Kind, p.SourceID)
	}
	return Record{Key: key, PacketID: p.ID, TS: p.TS, Kind: p.Kind, SourceID: p.SourceID, Payload: payload, Meta: string(buf)}, nil
}

// Message is a leased (or peeked) row.
type Message struct {
	Seq        int64
	Attempt    int // 1 for the first delivery, 2 after one failed attempt, ...
	EnqueuedAt string
	Key        string
	Packet     *packet.Packet
}

// decodeRow rebuilds a packet as upstream's read does: the stored id and
// ts, a meta that is not an object becomes empty.
func decodeRow(pid, ts, kind, src, payloadJSON, metaJSON string) (*packet.Packet, error) {
	payload, err := packet.DecodeJSON([]byte(payloadJSON))
	if err != nil {
		return nil, fmt.Errorf("payload_json: %w", err)
	}
	metaRaw, err := packet.DecodeJSON([]byte(metaJSON))
	if err != nil {
		return nil, fmt.Errorf("meta_json: %w", err)
	}
	meta, ok := metaRaw.(*packet.Map)
	if !ok {
		meta = packet.NewMap(1)
	}
	return &packet.Packet{ID: pid, TS: ts, Kind: kind, SourceID: src, Payload: payload, Meta: meta}, nil
}
