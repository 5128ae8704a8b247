package event

import (
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func TestNamespace(t *testing.T) {
	if got := packet.FormatUUID(Namespace); got != "c5b2d7c1-3170-585c-90de-e92b07e756de" {
		t.Fatalf("namespace = %s", got)
	}
}

// Expected keys and ids were produced by upstream's
// _event_idempotency_key and uuid5 (seed 0ff8387).
func TestKeyAndID(t *testing.T) {
	bbox := func(kv ...any) *packet.Map { return packet.MapOf(kv...) }
	cases := []struct {
		name, site, cam, ts string
		det                 *packet.Map
		key, id             string
	}{
		{"spec vector", "S001", "cam01", "2026-02-14T00:00:00Z",
			packet.MapOf("event_type", "ZONE_INTRUSION", "object_type", "PERSON", "track_id", int64(0),
				"bbox", bbox("x1", int64(2), "y1", int64(2), "x2", int64(4), "y2", int64(4))),
			"event:S001:cam01:ZONE_INTRUSION:PERSON:0:2026-02-14T00:00:00Z:2:2:4:4",
			"479498e4-8f22-50d8-8fbf-3a619dd16c04"},
		{"python float repr, no track", "S1", "cam01", "2026-02-14T00:00:00Z",
			packet.MapOf("event_type", "FIRE_DETECTED", "object_type", "FIRE",
				"bbox", bbox("x1", 1.0, "y1", 2.5, "x2", 1e-05, "y2", 1e16)),
			"event:S1:cam01:FIRE_DETECTED:FIRE:na:2026-02-14T00:00:00Z:1.0:2.5:1e-05:1e+16",
			"cbd31b75-83ed-52c9-a525-798b6d0cf7eb"},
		{"null track and coordinates", "S1", "c", "t",
			packet.MapOf("track_id", nil, "bbox", bbox("x1", nil)),
			"event:S1:c:::na:t:None:::", "0f0c0ef0-ca0f-52f3-abfe-714136f4c620"},
		{"bbox not a mapping", "S1", "c", "t",
			packet.MapOf("track_id", "7", "bbox", []any{int64(1), int64(2)}),
			"event:S1:c:::7:t:", "cc2c322f-7f1c-5b3a-b5c5-247d022ad042"},
		{"bbox missing, bool track, int event type", "S1", "c", "t",
			packet.MapOf("track_id", true, "event_type", int64(3)),
			"event:S1:c:3::True:t::::", "2c171587-cb69-5860-b57f-a3b7b2fd273f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := Key(c.site, c.cam, c.ts, c.det)
			if key != c.key {
				t.Fatalf("key = %q, want %q", key, c.key)
			}
			if id := ID(key); id != c.id {
				t.Fatalf("id = %s, want %s", id, c.id)
			}
		})
	}
}

func TestValid(t *testing.T) {
	full := func() *packet.Map {
		return packet.MapOf("bbox", packet.MapOf("x1", int64(1), "y1", int64(2), "x2", int64(3), "y2", int64(4)),
			"confidence", 0.5, "event_type", "E", "object_type", "PERSON", "severity", "LOW", "track_id", int64(1))
	}
	without := func(k string) *packet.Map { m := full(); m.Delete(k); return m }
	with := func(k string, v any) *packet.Map { m := full(); m.Set(k, v); return m }
	cases := []struct {
		name string
		det  *packet.Map
		want bool
	}{
		{"complete", full(), true},
		{"no bbox", without("bbox"), false},
		{"no confidence", without("confidence"), false},
		{"null confidence still has the key", with("confidence", nil), true},
		{"no event_type", without("event_type"), false},
		{"no object_type", without("object_type"), false},
		{"no severity", without("severity"), false},
		{"bbox a list", with("bbox", []any{}), false},
		{"bbox without y2", with("bbox", packet.MapOf("x1", 1, "y1", 1, "x2", 1)), false},
		{"person without track", without("track_id"), false},
		{"person with null track", with("track_id", nil), false},
		{"fire without track", func() *packet.Map { m := without("track_id"); m.Set("object_type", "FIRE"); return m }(), true},
	}
	for _, c := range cases {
		if got := Valid(c.det); got != c.want {
			t.Errorf("%s: Valid = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBuildKeyOrderAndFields(t *testing.T) {
	det := packet.MapOf("bbox", packet.MapOf("x1", int64(2), "y1", int64(2), "x2", int64(4), "y2", int64(4)),
		"confidence", int64(1), "event_type", "ZONE_INTRUSION", "object_type", "PERSON", "severity", "LOW",
		"track_id", int64(0), "sensor", packet.MapOf("v", int64(1)))
	p, key, ok := Build("S001", "cam01", "2026-02-14T00:00:00Z", det)
	if !ok {
		t.Fatal("Build refused a valid detection")
	}
	got := string(packet.AppendJSON(nil, p, packet.Spaced))
	want := `{"event_id": "479498e4-8f22-50d8-8fbf-3a619dd16c04", "ts": "2026-02-14T00:00:00Z", "site_id": "S001", ` +
		`"camera_id": "cam01", "event_type": "ZONE_INTRUSION", "object_type": "PERSON", "severity": "LOW", "track_id": 0, ` +
		`"bbox": {"x1": 2, "y1": 2, "x2": 4, "y2": 4}, "confidence": 1.0, "zone": {"zone_id": "", "inside": false}, ` +
		`"snapshot_path": null, "sensor": {"v": 1}}`
	if got != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}
	if key != "event:S001:cam01:ZONE_INTRUSION:PERSON:0:2026-02-14T00:00:00Z:2:2:4:4" {
		t.Fatalf("key %q", key)
	}
	if _, _, ok := Build("S", "c", "t", packet.MapOf("confidence", "high")); ok {
		t.Fatal("non-numeric confidence accepted")
	}
}

func TestFloat(t *testing.T) {
	cases := []struct {
		in   any
		want float64
		ok   bool
	}{
		{0.75, 0.75, true}, {int64(2), 2, true}, {true, 1, true}, {" 0.5 ", 0.5, true},
		{"abc", 0, false}, {nil, 0, false}, {[]any{}, 0, false},
	}
	for _, c := range cases {
		got, ok := Float(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("Float(%v) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
