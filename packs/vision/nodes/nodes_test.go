package nodes_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/packs/vision/nodes"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const (
	sampler  = "schnitzel_stream.nodes.video:EveryNthFrameSamplerNode"
	detector = "schnitzel_stream.nodes.mock_detection:MockDetectorNode"
	builder  = "schnitzel_stream.nodes.event_builder:ProtocolV02EventBuilderNode"
	zonesN   = "schnitzel_stream.nodes.policy:ZonePolicyNode"
	dedupN   = "schnitzel_stream.nodes.policy:DedupPolicyNode"
	snapN    = "schnitzel_stream.packs.vision.nodes:EventSnapshotNode"
)

func TestRegisteredNames(t *testing.T) {
	r := plugin.NewRegistry()
	nodes.Register(r)
	want := map[string][]string{
		sampler:  {"schnitzel_stream.packs.vision.nodes:EveryNthFrameSamplerNode", "schnitzel_stream.packs.vision.nodes.video:EveryNthFrameSamplerNode"},
		detector: {"schnitzel_stream.packs.vision.nodes:MockDetectorNode", "schnitzel_stream.packs.vision.nodes.mock_detection:MockDetectorNode"},
		builder:  {"schnitzel_stream.packs.vision.nodes:ProtocolV02EventBuilderNode", "schnitzel_stream.packs.vision.nodes.event_builder:ProtocolV02EventBuilderNode"},
		zonesN:   {"schnitzel_stream.packs.vision.nodes:ZonePolicyNode", "schnitzel_stream.packs.vision.nodes.policy:ZonePolicyNode"},
		dedupN:   {"schnitzel_stream.packs.vision.nodes:DedupPolicyNode", "schnitzel_stream.packs.vision.nodes.policy:DedupPolicyNode"},
		snapN:    nil,
	}
	for name, aliases := range want {
		e, ok := r.Lookup(name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		for _, a := range aliases {
			if ea, ok := r.Lookup(a); !ok || ea != e {
				t.Errorf("alias %s does not resolve to %s", a, name)
			}
		}
		// Every default config decodes (required keys aside).
		if _, _, errs := e.Decode(packet.NewMap(0)); len(errs) > 0 && name != builder && name != snapN {
			t.Errorf("%s: default config: %v", name, errs[0])
		}
	}
}

func build(t testing.TB, name string, cfg *packet.Map) any {
	t.Helper()
	r := plugin.NewRegistry()
	nodes.Register(r)
	n := plugintest.Build(t, r, name, "node", cfg)
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n
}

func buildErr(name string, cfg *packet.Map) error {
	r := plugin.NewRegistry()
	nodes.Register(r)
	_, err := plugintest.TryBuild(r, name, "node", cfg)
	return err
}

func metrics(n any) map[string]int64 {
	out := map[string]int64{}
	for _, m := range n.(plugin.Metrics).Metrics() {
		out[m.Name] = m.Value
	}
	return out
}

func framePkt(idx int64, fr any) *packet.Packet {
	return packet.New("frame", "cam01", packet.MapOf("frame", fr, "frame_idx", idx), "2026-02-14T00:00:00Z",
		packet.MapOf("frame_idx", idx, "idempotency_key", "frame:cam01:0"))
}

func isDrop(err error) bool {
	var pe *plugin.PacketError
	return errors.As(err, &pe)
}

func TestSampler(t *testing.T) {
	cases := []struct {
		cfg  *packet.Map
		keep []int64
	}{
		{packet.MapOf("every_n", int64(2)), []int64{0, 2, 4}},
		{packet.MapOf("every_n", int64(3), "offset", int64(1)), []int64{1, 4}},
		{packet.MapOf("every_n", int64(0)), []int64{0, 1, 2, 3, 4, 5}},
		{packet.MapOf("every_n", int64(4), "offset", int64(7)), []int64{3}},
	}
	for _, c := range cases {
		n := build(t, sampler, c.cfg)
		var in []*packet.Packet
		for i := int64(0); i < 6; i++ {
			in = append(in, framePkt(i, nil))
		}
		out := plugintest.Process(t, n, in...)
		var got []int64
		for _, p := range out {
			v, _ := p.Payload.(*packet.Map).Get("frame_idx")
			got = append(got, v.(int64))
			if p != in[v.(int64)] {
				t.Error("kept packet is not passed through unchanged")
			}
		}
		if packet.PyStr(toAny(got)) != packet.PyStr(toAny(c.keep)) {
			t.Errorf("%s: kept %v, want %v", packet.PyStr(c.cfg), got, c.keep)
		}
		m := metrics(n)
		if m["kept_total"] != int64(len(c.keep)) || m["dropped_total"] != int64(6-len(c.keep)) {
			t.Errorf("metrics %v", m)
		}
	}
	n := build(t, sampler, nil)
	for _, bad := range []any{nil, "x", packet.MapOf("frame_idx", "3"), packet.MapOf("frame_idx", 1.0)} {
		err := plugintest.ProcessInto(n, &plugintest.Collector{}, packet.New("frame", "c", bad, "", nil))
		if !isDrop(err) || !strings.Contains(err.Error(), "frame") {
			t.Errorf("payload %s: err %v, want a dropped packet", packet.PyStr(bad), err)
		}
	}
}

func toAny(v []int64) []any {
	out := make([]any, len(v))
	for i := range v {
		out[i] = v[i]
	}
	return out
}

func TestMockDetector(t *testing.T) {
	t.Run("upstream default: track = frame_idx", func(t *testing.T) {
		n := build(t, detector, packet.MapOf("emit_every_n", int64(1)))
		in := framePkt(7, nil)
		out := plugintest.Process(t, n, in)
		if len(out) != 1 {
			t.Fatalf("%d packets", len(out))
		}
		p := out[0]
		if p.Kind != "detection" || p.SourceID != "cam01" || p.TS != in.TS || p.ID == in.ID {
			t.Fatalf("packet %+v", p)
		}
		got := string(packet.AppendJSON(nil, p.Payload, packet.Spaced))
		want := `{"bbox": {"x1": 10, "y1": 20, "x2": 200, "y2": 260}, "confidence": 0.75, "event_type": "ZONE_INTRUSION", "object_type": "PERSON", "severity": "LOW", "track_id": 7}`
		if got != want {
			t.Fatalf("payload\n got %s\nwant %s", got, want)
		}
		if m := string(packet.AppendJSON(nil, p.Meta, packet.Spaced)); m != `{"frame_idx": 7, "idempotency_key": "frame:cam01:0"}` {
			t.Fatalf("meta %s", m)
		}
		if in.Meta.Len() != 2 {
			t.Fatal("input meta modified")
		}
	})
	t.Run("emit_every_n and bbox_dx", func(t *testing.T) {
		n := build(t, detector, packet.MapOf("emit_every_n", int64(2), "bbox_dx", int64(3),
			"bbox", packet.MapOf("x1", int64(10), "y1", int64(0), "x2", int64(20), "y2", int64(10))))
		if out := plugintest.Process(t, n, framePkt(1, nil)); len(out) != 0 {
			t.Fatal("odd frame emitted")
		}
		out := plugintest.Process(t, n, framePkt(2, nil))
		bbox, _ := out[0].Payload.(*packet.Map).Get("bbox")
		if s := string(packet.AppendJSON(nil, bbox, packet.Compact)); s != `{"x1":16,"y1":0,"x2":26,"y2":10}` {
			t.Fatalf("bbox %s", s)
		}
		if metrics(n)["emitted_total"] != 1 {
			t.Fatal("emitted_total")
		}
	})
	t.Run("track_id forms", func(t *testing.T) {
		cases := []struct {
			v    any
			want any
		}{{int64(5), int64(5)}, {"12", int64(12)}, {nil, int64(0)}, {" frame_idx ", int64(4)}, {3.0, int64(3)}}
		for _, c := range cases {
			n := build(t, detector, packet.MapOf("track_id", c.v))
			out := plugintest.Process(t, n, framePkt(4, nil))
			if got, _ := out[0].Payload.(*packet.Map).Get("track_id"); got != c.want {
				t.Errorf("track_id %#v: %#v, want %#v", c.v, got, c.want)
			}
		}
		for _, bad := range []any{"abc", 2.5, true} {
			if err := buildErr(detector, packet.MapOf("track_id", bad)); err == nil || !strings.Contains(err.Error(), "track_id") {
				t.Errorf("track_id %#v: err %v", bad, err)
			}
		}
	})
	t.Run("decoded frame handed on in meta", func(t *testing.T) {
		n := build(t, detector, nil)
		fr := frame.New(4, 2)
		out := plugintest.Process(t, n, framePkt(0, fr))
		if v, _ := out[0].Meta.Get(nodes.FrameMetaKey); v != fr {
			t.Fatalf("meta.frame = %v", v)
		}
	})
}

func det(kv ...any) *packet.Map {
	m := packet.MapOf("bbox", packet.MapOf("x1", int64(10), "y1", int64(20), "x2", int64(30), "y2", int64(40)),
		"confidence", 0.75, "event_type", "ZONE_INTRUSION", "object_type", "PERSON", "severity", "LOW", "track_id", int64(123))
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			m.Delete(kv[i].(string))
			continue
		}
		m.Set(kv[i].(string), kv[i+1])
	}
	return m
}

func TestEventBuilder(t *testing.T) {
	if err := buildErr(builder, nil); err == nil || !strings.Contains(err.Error(), "site_id") {
		t.Fatalf("missing site_id: %v", err)
	}
	if err := buildErr(builder, packet.MapOf("site_id", "  ")); err == nil {
		t.Fatal("blank site_id accepted")
	}
	t.Run("deterministic id and key", func(t *testing.T) {
		n := build(t, builder, packet.MapOf("site_id", "S1", "camera_id", "cam01"))
		p1 := packet.New("detection", "cam01", det(), "2026-02-14T00:00:00Z", nil)
		p2 := packet.New("detection", "cam01", det(), "2026-02-14T00:00:00Z", nil)
		out := plugintest.Process(t, n, p1, p2)
		if len(out) != 2 {
			t.Fatalf("%d events", len(out))
		}
		e1, e2 := out[0].Payload.(*packet.Map), out[1].Payload.(*packet.Map)
		id1, _ := e1.Get("event_id")
		id2, _ := e2.Get("event_id")
		k1, _ := out[0].Meta.Get("idempotency_key")
		k2, _ := out[1].Meta.Get("idempotency_key")
		s1, _ := out[0].Meta.Get("source_packet_id")
		s2, _ := out[1].Meta.Get("source_packet_id")
		if id1 != id2 || k1 != k2 || s1 == s2 || s1 != p1.ID {
			t.Fatalf("ids %v %v keys %v %v sources %v %v", id1, id2, k1, k2, s1, s2)
		}
		if k1 != "event:S1:cam01:ZONE_INTRUSION:PERSON:123:2026-02-14T00:00:00Z:10:20:30:40" {
			t.Fatalf("key %v", k1)
		}
		if out[0].Kind != "event" || out[0].SourceID != "cam01" || out[0].TS != p1.TS {
			t.Fatalf("packet %+v", out[0])
		}
	})
	t.Run("list, invalid skipped, camera from source_id", func(t *testing.T) {
		n := build(t, builder, packet.MapOf("site_id", "S1"))
		valid := det("object_type", "FIRE", "event_type", "FIRE_DETECTED", "track_id", "<delete>")
		p := packet.New("detection", "cam99", []any{packet.MapOf("confidence", 0.1), "junk", valid,
			det("confidence", "high")}, "2026-02-14T00:00:00Z", nil)
		out := plugintest.Process(t, n, p)
		if len(out) != 1 {
			t.Fatalf("%d events", len(out))
		}
		e := out[0].Payload.(*packet.Map)
		if c, _ := e.Get("camera_id"); c != "cam99" || out[0].SourceID != "cam99" {
			t.Fatalf("camera %v", c)
		}
		if tr, _ := e.Get("track_id"); tr != nil {
			t.Fatalf("track %v", tr)
		}
		m := metrics(n)
		if m["emitted_total"] != 1 || m["skipped_total"] != 2 {
			t.Fatalf("metrics %v", m)
		}
	})
	t.Run("meta keeps upstream order and copies", func(t *testing.T) {
		n := build(t, builder, packet.MapOf("site_id", "S1"))
		meta := packet.MapOf("frame_idx", int64(0), "idempotency_key", "frame:cam01:0", "pos_msec", int64(0))
		p := packet.New("detection", "cam01", det("snapshot_path", "/s.jpg", "sensor", packet.MapOf("d", int64(1))), "T", meta)
		out := plugintest.Process(t, n, p)
		if keys := strings.Join(out[0].Meta.Keys(), ","); keys != "frame_idx,idempotency_key,pos_msec,source_packet_id" {
			t.Fatalf("meta keys %s", keys)
		}
		if v, _ := p.Meta.Get("idempotency_key"); v != "frame:cam01:0" {
			t.Fatal("input meta modified")
		}
		e := out[0].Payload.(*packet.Map)
		if keys := strings.Join(e.Keys(), ","); keys != "event_id,ts,site_id,camera_id,event_type,object_type,severity,track_id,bbox,confidence,zone,snapshot_path,sensor" {
			t.Fatalf("payload keys %s", keys)
		}
		if sp, _ := e.Get("snapshot_path"); sp != "/s.jpg" {
			t.Fatalf("snapshot_path %v", sp)
		}
	})
	t.Run("null payload emits nothing, scalar payload drops the packet", func(t *testing.T) {
		n := build(t, builder, packet.MapOf("site_id", "S1"))
		if out := plugintest.Process(t, n, packet.New("detection", "c", nil, "", nil)); len(out) != 0 {
			t.Fatal("null payload emitted")
		}
		if err := plugintest.ProcessInto(n, &plugintest.Collector{}, packet.New("detection", "c", "x", "", nil)); !isDrop(err) {
			t.Fatalf("scalar payload: %v", err)
		}
	})
}

func squareZones() []any {
	return []any{packet.MapOf("zone_id", "Z1", "enabled", true, "polygon", []any{
		[]any{int64(0), int64(0)}, []any{int64(10), int64(0)}, []any{int64(10), int64(10)}, []any{int64(0), int64(10)}})}
}

func evt(kv ...any) *packet.Packet {
	return packet.New("event", "cam01", packet.MapOf(kv...), "", nil)
}

func zoneOf(t *testing.T, p *packet.Packet) string {
	t.Helper()
	z, _ := p.Payload.(*packet.Map).Get("zone")
	return string(packet.AppendJSON(nil, z, packet.Compact))
}

func TestZonePolicy(t *testing.T) {
	inside := `{"zone_id":"Z1","inside":true}`
	outside := `{"zone_id":"","inside":false}`
	bb := func(x1, y1, x2, y2 int64) *packet.Map { return packet.MapOf("x1", x1, "y1", y1, "x2", x2, "y2", y2) }
	t.Run("inline", func(t *testing.T) {
		n := build(t, zonesN, packet.MapOf("zones", squareZones(), "rule_map", packet.MapOf("FIRE", "bbox_center")))
		in := evt("event_type", "ZONE_INTRUSION", "bbox", bb(2, 2, 4, 4))
		out := plugintest.Process(t, n,
			in,
			evt("event_type", "ZONE_INTRUSION", "bbox", bb(2, 8, 4, 12)), // bottom centre y=12: outside
			evt("event_type", "FIRE", "bbox", bb(2, 8, 4, 12)),           // centre y=10: boundary, inside
			evt("event_type", "ZONE_INTRUSION"),                          // no bbox
		)
		want := []string{inside, outside, inside, outside}
		for i := range want {
			if got := zoneOf(t, out[i]); got != want[i] {
				t.Errorf("event %d zone %s, want %s", i, got, want[i])
			}
		}
		if _, has := in.Payload.(*packet.Map).Get("zone"); has {
			t.Fatal("input payload modified")
		}
		if out[0].ID != in.ID || out[0].TS != in.TS {
			t.Fatal("packet id/ts not kept")
		}
		if keys := strings.Join(out[0].Payload.(*packet.Map).Keys(), ","); keys != "event_type,bbox,zone" {
			t.Fatalf("keys %s", keys)
		}
		if m := metrics(n); m["processed_total"] != 4 || m["inside_total"] != 2 {
			t.Fatalf("metrics %v", m)
		}
	})
	t.Run("existing zone key keeps its position", func(t *testing.T) {
		n := build(t, zonesN, packet.MapOf("zones", squareZones()))
		out := plugintest.Process(t, n, evt("zone", packet.MapOf("zone_id", "Z0", "inside", false), "event_type", "X", "bbox", bb(2, 2, 4, 4)))
		if keys := strings.Join(out[0].Payload.(*packet.Map).Keys(), ","); keys != "zone,event_type,bbox" || zoneOf(t, out[0]) != inside {
			t.Fatalf("keys %s zone %s", keys, zoneOf(t, out[0]))
		}
	})
	t.Run("none", func(t *testing.T) {
		n := build(t, zonesN, nil)
		out := plugintest.Process(t, n, evt("event_type", "X", "bbox", bb(2, 2, 4, 4), "zone", packet.MapOf("zone_id", "Z0", "inside", false)))
		if zoneOf(t, out[0]) != outside {
			t.Fatalf("zone %s", zoneOf(t, out[0]))
		}
	})
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "zones.yaml")
		os.WriteFile(p, []byte("zones:\n  - zone_id: Z1\n    polygon: [[0, 0], [10, 0], [10, 10], [0, 10]]\n"), 0o644)
		n := build(t, zonesN, packet.MapOf("source", "file", "file_path", p))
		out := plugintest.Process(t, n, evt("event_type", "X", "bbox", bb(2, 2, 4, 4)))
		if zoneOf(t, out[0]) != inside {
			t.Fatalf("zone %s", zoneOf(t, out[0]))
		}
		// A malformed, missing or polygon-less file fails validation,
		// naming the file and the zone (as the node's docs say).
		for name, content := range map[string]string{
			"bad.json":     `[{"zone_id":"GATE","polygon":[[0,0],[1,"x"],[1,1]]}]`,
			"short.json":   `[{"zone_id":"GATE","polygon":[[0,0],[1,1]]}]`,
			"syntax.yml":   "zones: [GATE\n",
			"empty.yaml":   "other: 1\n",
			"missing.json": "",
		} {
			bad := filepath.Join(dir, name)
			if name != "missing.json" {
				os.WriteFile(bad, []byte(content), 0o644)
			}
			err := buildErr(zonesN, packet.MapOf("source", "file", "file_path", bad))
			if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "file_path") {
				t.Errorf("%s: validation error %v", name, err)
			}
			if strings.HasPrefix(content, "[") && !strings.Contains(err.Error(), "GATE") {
				t.Errorf("%s: error does not name the zone: %v", name, err)
			}
		}
	})
	t.Run("config errors", func(t *testing.T) {
		cases := []struct {
			cfg  *packet.Map
			want string
		}{
			{packet.MapOf("zones", []any{packet.MapOf("zone_id", "Z7", "polygon", []any{[]any{int64(0)}, []any{int64(1), int64(1)}, []any{int64(2), int64(2)}})}), "Z7"},
			{packet.MapOf("source", "file"), "file_path"},
			{packet.MapOf("source", "file", "file_path", "zones.txt"), "file_path"},
			{packet.MapOf("source", "api"), "api_cfg.base_url"},
			{packet.MapOf("source", "files"), "source"},
		}
		for _, c := range cases {
			if err := buildErr(zonesN, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: err %v, want %q", packet.PyStr(c.cfg), err, c.want)
			}
		}
	})
	t.Run("bad payloads drop the packet", func(t *testing.T) {
		n := build(t, zonesN, packet.MapOf("zones", squareZones()))
		for _, p := range []*packet.Packet{packet.New("event", "c", "x", "", nil), evt("event_type", "X", "bbox", packet.MapOf("x1", "a", "y1", int64(1), "x2", int64(1), "y2", int64(1)))} {
			if err := plugintest.ProcessInto(n, &plugintest.Collector{}, p); !isDrop(err) {
				t.Errorf("payload %s: %v", packet.PyStr(p.Payload), err)
			}
		}
	})
}

func TestDedupPolicy(t *testing.T) {
	n := build(t, dedupN, packet.MapOf("cooldown_sec", 1.0, "prune_interval", int64(1)))
	mk := func(sev string) *packet.Packet {
		return evt("camera_id", "cam01", "event_type", "ZONE_INTRUSION", "track_id", int64(1), "severity", sev)
	}
	p1, p2, p3 := mk("LOW"), mk("LOW"), mk("HIGH")
	out := plugintest.Process(t, n, p1, p2, p3)
	if len(out) != 2 || out[0] != p1 || out[1] != p3 {
		t.Fatalf("kept %v", out)
	}
	if m := metrics(n); m["accepted_total"] != 2 || m["dropped_total"] != 1 {
		t.Fatalf("metrics %v", m)
	}
	if err := buildErr(dedupN, packet.MapOf("cooldown_sec", -1.0)); err == nil {
		t.Fatal("negative cooldown accepted")
	}
}

func TestSnapshotAfterDedup(t *testing.T) {
	base := t.TempDir()
	det := build(t, detector, packet.MapOf("track_id", int64(4)))
	eb := build(t, builder, packet.MapOf("site_id", "S001"))
	dd := build(t, dedupN, nil)
	sn := build(t, snapN, packet.MapOf("base_dir", base, "public_prefix", "https://cdn.example/snap/"))

	fr := frame.New(8, 4)
	for i := range fr.BGR() {
		fr.BGR()[i] = byte(i)
	}
	src := "../../x"
	pk := func(idx int64, f any) *packet.Packet {
		return packet.New("frame", src, packet.MapOf("frame", f, "frame_idx", idx), "2026-02-14T00:00:0"+string(rune('0'+idx))+"Z", nil)
	}
	// Frames 0 and 1 give the same track: dedup drops the second.
	pkts := plugintest.Process(t, det, pk(0, fr), pk(1, fr), pk(2, nil))
	pkts = plugintest.Process(t, eb, pkts...)
	pkts = plugintest.Process(t, dd, pkts...)
	if len(pkts) != 1 {
		t.Fatalf("dedup kept %d", len(pkts))
	}
	out := plugintest.Process(t, sn, pkts...)
	sp, _ := out[0].Payload.(*packet.Map).Get("snapshot_path")
	if sp != "https://cdn.example/snap/S001/______x/2026-02-14T00_00_00Z_4.jpg" {
		t.Fatalf("snapshot_path %v", sp)
	}
	if _, has := out[0].Meta.Get(nodes.FrameMetaKey); has {
		t.Fatal("meta.frame not removed")
	}
	if _, has := pkts[0].Meta.Get(nodes.FrameMetaKey); !has {
		t.Fatal("input packet meta modified")
	}
	var files []string
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(base, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if len(files) != 1 || files[0] != "S001/______x/2026-02-14T00_00_00Z_4.jpg" {
		t.Fatalf("files %v", files)
	}
	// Without a frame the event passes unchanged.
	noFrame := evt("site_id", "S001", "camera_id", "c", "ts", "t")
	if out := plugintest.Process(t, sn, noFrame); out[0] != noFrame {
		t.Fatal("event without frame changed")
	}
	if m := metrics(sn); m["written_total"] != 1 || m["skipped_total"] != 1 || m["failed_total"] != 0 {
		t.Fatalf("metrics %v", m)
	}
	// Without a prefix the path is the file path.
	sn2 := build(t, snapN, packet.MapOf("base_dir", base))
	out = plugintest.Process(t, sn2, pkts...)
	sp, _ = out[0].Payload.(*packet.Map).Get("snapshot_path")
	if sp != filepath.Join(base, "S001", "______x", "2026-02-14T00_00_00Z_4_1.jpg") {
		t.Fatalf("snapshot_path %v", sp)
	}
}

func TestSnapshotWriteFailurePassesEvent(t *testing.T) {
	dir := t.TempDir()
	sn := build(t, snapN, packet.MapOf("base_dir", dir))
	// Make the site directory a file so the write fails.
	os.WriteFile(filepath.Join(dir, "S001"), nil, 0o644)
	p := packet.New("event", "c", packet.MapOf("site_id", "S001", "camera_id", "c", "ts", "t", "snapshot_path", nil), "",
		packet.MapOf(nodes.FrameMetaKey, frame.New(2, 2)))
	out := plugintest.Process(t, sn, p)
	if sp, _ := out[0].Payload.(*packet.Map).Get("snapshot_path"); sp != nil || len(out) != 1 {
		t.Fatalf("snapshot_path %v", sp)
	}
	if metrics(sn)["failed_total"] != 1 {
		t.Fatal("failure not counted")
	}
	if err := buildErr(snapN, nil); err == nil || !strings.Contains(err.Error(), "base_dir") {
		t.Fatalf("missing base_dir: %v", err)
	}
}

func TestZonePolicyAPISource(t *testing.T) {
	var calls atomic.Int64
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		path.Store(r.URL.Path)
		fmt.Fprint(w, `[{"zone_id":"Z1","enabled":true,"polygon":[[0,0],[10,0],[10,10],[0,10]]}]`)
	}))
	defer srv.Close()
	n := build(t, zonesN, packet.MapOf("source", "api", "site_id", "S001", "camera_id", "cam01",
		"api_cfg", packet.MapOf("base_url", srv.URL+"/", "get_path_template", "/api/sites/{site_id}/cameras/{camera_id}/zones")))
	// The start-up fetch has landed: the very first event sees the zone.
	out := plugintest.Process(t, n, evt("event_type", "ZONE_INTRUSION", "bbox", packet.MapOf("x1", int64(2), "y1", int64(2), "x2", int64(4), "y2", int64(4))))
	if got := zoneOf(t, out[0]); got != `{"zone_id":"Z1","inside":true}` {
		t.Fatalf("zone %s", got)
	}
	if path.Load() != "/api/sites/S001/cameras/cam01/zones" || calls.Load() != 1 {
		t.Fatalf("path %v, %d calls", path.Load(), calls.Load())
	}
}

func BenchmarkEventChain(b *testing.B) {
	det := build(b, detector, packet.MapOf("bbox", packet.MapOf("x1", int64(2), "y1", int64(2), "x2", int64(4), "y2", int64(4))))
	eb := build(b, builder, packet.MapOf("site_id", "S001"))
	zn := build(b, zonesN, packet.MapOf("zones", squareZones()))
	dd := build(b, dedupN, packet.MapOf("cooldown_sec", 0.0))
	chain := []plugin.Processor{det.(plugin.Processor), eb.(plugin.Processor), zn.(plugin.Processor), dd.(plugin.Processor)}
	in := framePkt(0, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pk := []*packet.Packet{in}
		for _, n := range chain {
			c := &plugintest.Collector{}
			for _, p := range pk {
				if err := n.Process(ctx, p, c); err != nil {
					b.Fatal(err)
				}
			}
			pk = c.Packets()
		}
		if len(pk) != 1 {
			b.Fatal("lost the event")
		}
	}
}
