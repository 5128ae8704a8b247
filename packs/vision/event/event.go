// Package event builds protocol v0.2 events (docs/packs/vision/event_protocol_v0.2.md upstream) from
// detections: the payload scaffold in upstream's key order, the detection
// validity rule, and the deterministic idempotency key and UUIDv5 event id
// that make at-least-once delivery safe to deduplicate downstream.
package event

import (
	"crypto/sha1"
	"errors"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// namespaceDNS is RFC 4122's DNS namespace (Python's uuid.NAMESPACE_DNS).
var namespaceDNS = [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// Namespace is UUIDv5(DNS, "schnitzel_stream:event_protocol_v0.2"), the
// namespace of event ids: c5b2d7c1-3170-585c-90de-e92b07e756de.
var Namespace = UUID5(namespaceDNS, "schnitzel_stream:event_protocol_v0.2")

// UUID5 returns the RFC 4122 name-based (SHA-1) UUID of name in ns.
func UUID5(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u
}

// ID returns the event id for an idempotency key, as a canonical string.
func ID(key string) string { return packet.FormatUUID(UUID5(Namespace, key)) }

// Key returns upstream's idempotency key
//
//	event:{site}:{camera}:{event_type}:{object_type}:{track|na}:{ts}:{x1}:{y1}:{x2}:{y2}
//
// with every value rendered as Python's str() renders it (int 2, float 2.0,
// None for a null), because the event id is derived from it and must equal
// upstream's byte for byte. A missing event_type, object_type or bbox
// coordinate renders as "" and a bbox that is not a mapping leaves the four
// coordinates out entirely, as upstream does.
func Key(site, camera, ts string, det *packet.Map) string {
	var b strings.Builder
	b.Grow(96)
	b.WriteString("event:")
	b.WriteString(site)
	b.WriteByte(':')
	b.WriteString(camera)
	b.WriteByte(':')
	b.WriteString(strOr(det, "event_type"))
	b.WriteByte(':')
	b.WriteString(strOr(det, "object_type"))
	b.WriteByte(':')
	if t, ok := det.Get("track_id"); ok && t != nil {
		b.WriteString(packet.PyStr(t))
	} else {
		b.WriteString("na")
	}
	b.WriteByte(':')
	b.WriteString(ts)
	b.WriteByte(':')
	raw, ok := det.Get("bbox")
	if !ok {
		// upstream: det.get("bbox", {}) is a dict, so the coordinates render empty.
		raw = packet.NewMap(0)
	}
	if bbox, isMap := raw.(*packet.Map); isMap {
		for i, k := range [4]string{"x1", "y1", "x2", "y2"} {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(strOr(bbox, k))
		}
	}
	return b.String()
}

func strOr(m *packet.Map, key string) string {
	v, ok := m.Get(key)
	if !ok {
		return ""
	}
	return packet.PyStr(v)
}

// Valid reports whether det is a usable detection: it has bbox (a mapping
// with x1, y1, x2, y2), confidence, event_type, object_type and severity
// keys, and a non-null track_id when object_type is PERSON. Values are not
// type-checked beyond that (upstream's rule).
func Valid(det *packet.Map) bool {
	for _, k := range [...]string{"bbox", "confidence", "event_type", "object_type", "severity"} {
		if _, ok := det.Get(k); !ok {
			return false
		}
	}
	raw, _ := det.Get("bbox")
	bbox, ok := raw.(*packet.Map)
	if !ok {
		return false
	}
	for _, k := range [...]string{"x1", "y1", "x2", "y2"} {
		if _, ok := bbox.Get(k); !ok {
			return false
		}
	}
	if ot, _ := det.Get("object_type"); ot == "PERSON" {
		if t, _ := det.Get("track_id"); t == nil {
			return false
		}
	}
	return true
}

// Scaffold returns an event payload with every protocol key in upstream's
// order (event_id, ts, site_id, camera_id, event_type, object_type,
// severity, track_id, bbox, confidence, zone, snapshot_path, sensor) and
// their empty values. The caller fills in the detection's fields.
func Scaffold(eventID, ts, site, camera string) *packet.Map {
	return packet.MapOf(
		"event_id", eventID,
		"ts", ts,
		"site_id", site,
		"camera_id", camera,
		"event_type", "",
		"object_type", "",
		"severity", "",
		"track_id", nil,
		"bbox", packet.MapOf("x1", int64(0), "y1", int64(0), "x2", int64(0), "y2", int64(0)),
		"confidence", 0.0,
		"zone", EmptyZone(),
		"snapshot_path", nil,
		"sensor", nil,
	)
}

// EmptyZone is the zone result of an event outside every zone.
func EmptyZone() *packet.Map { return packet.MapOf("zone_id", "", "inside", false) }

// Build turns a valid detection (see Valid) into an event payload for the
// packet ts ts: the scaffold with event_id = ID(key), the detection's
// event_type, object_type, severity, confidence (as a float), bbox (shared,
// not copied: payloads are read-only) and track_id, plus snapshot_path and
// sensor when the detection has them. It returns the payload and its
// idempotency key; ok is false when confidence is not a number.
func Build(site, camera, ts string, det *packet.Map) (payload *packet.Map, key string, ok bool) {
	rawConf, _ := det.Get("confidence")
	conf, ok := Float(rawConf)
	if !ok {
		return nil, "", false
	}
	key = Key(site, camera, ts, det)
	payload = Scaffold(ID(key), ts, site, camera)
	get := func(k string) any { v, _ := det.Get(k); return v }
	payload.Set("event_type", get("event_type"))
	payload.Set("object_type", get("object_type"))
	payload.Set("severity", get("severity"))
	payload.Set("confidence", conf)
	payload.Set("bbox", get("bbox"))
	payload.Set("track_id", get("track_id"))
	if v, has := det.Get("snapshot_path"); has {
		payload.Set("snapshot_path", v)
	}
	if v, has := det.Get("sensor"); has {
		payload.Set("sensor", v)
	}
	return payload, key, true
}

// Float converts a value the way Python's float() does for JSON-like
// values: numbers, booleans and numeric strings (surrounding spaces, inf
// and nan allowed).
func Float(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			var ne *strconv.NumError
			// Python's float() keeps ±inf for out-of-range literals too.
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return f, true
			}
			return 0, false
		}
		return f, true
	}
	return 0, false
}
