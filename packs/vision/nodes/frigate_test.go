package nodes_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const frigateN = "schnitzel_stream.packs.vision.nodes:FrigateEventNode"

// evPkt is a protocol v0.2 event of camera cam for track tid (nil: none),
// at second sec, with box x1 and zone zone ("" outside every zone).
func evPkt(cam string, tid any, sec int, x1 int64, conf float64, zone string) *packet.Packet {
	ts := time.Date(2026, 2, 14, 0, 0, sec, 0, time.UTC).Format(time.RFC3339)
	z := packet.MapOf("zone_id", zone, "inside", zone != "")
	pl := packet.MapOf("event_id", "e-"+cam+"-"+packet.PyStr(tid)+"-"+ts, "ts", ts, "site_id", "s1", "camera_id", cam,
		"event_type", "ZONE_INTRUSION", "object_type", "PERSON", "severity", "LOW", "track_id", tid,
		"bbox", packet.MapOf("x1", x1, "y1", int64(10), "x2", x1+int64(20), "y2", int64(50)),
		"confidence", conf, "zone", z, "snapshot_path", nil, "sensor", nil)
	return packet.New("event", cam, pl, ts, nil)
}

type frigateMsg struct {
	typ           string
	before, after *packet.Map
	p             *packet.Packet
}

func frigateMsgs(t *testing.T, ps []*packet.Packet) []frigateMsg {
	t.Helper()
	var out []frigateMsg
	for _, p := range ps {
		m := p.Payload.(*packet.Map)
		typ, _ := m.GetString("type")
		b, _ := m.Get("before")
		a, _ := m.Get("after")
		out = append(out, frigateMsg{typ, b.(*packet.Map), a.(*packet.Map), p})
	}
	return out
}

func get(m *packet.Map, k string) any { v, _ := m.Get(k); return v }

func TestFrigateLifecycle(t *testing.T) {
	n := build(t, frigateN, nil)
	acked := 0
	a := evPkt("cam01", int64(1), 0, 100, 0.6, "")
	a.Ack = func() { acked++ }
	b := evPkt("cam01", int64(1), 1, 110, 0.9, "door")
	c := evPkt("cam01", int64(2), 1, 300, 0.7, "")
	d := evPkt("cam01", int64(1), 2, 110, 0.8, "")
	got := frigateMsgs(t, plugintest.Process(t, n, a, b, c, d)) // Process flushes at the end of input

	var types []string
	for _, m := range got {
		types = append(types, m.typ+":"+packet.PyStr(get(m.after, "id"))[:8])
	}
	if len(got) != 6 {
		t.Fatalf("got %d messages %v, want new, update, new, update, end, end", len(got), types)
	}
	want := []string{"new", "update", "new", "update", "end", "end"}
	for i, w := range want {
		if got[i].typ != w {
			t.Fatalf("message %d is %s, want %s (%v)", i, got[i].typ, w, types)
		}
	}
	id1, id2 := get(got[0].after, "id"), get(got[2].after, "id")
	if id1 == id2 || get(got[1].after, "id") != id1 || get(got[3].after, "id") != id1 {
		t.Errorf("ids: a track keeps its id, tracks differ: %v", types)
	}
	if got[0].p.Ack == nil {
		t.Error("new message lost its input's ack")
	} else {
		got[0].p.Ack()
		if acked != 1 {
			t.Error("ack not the input's")
		}
	}
	// The update's before is the previous after; state accumulates.
	up := got[1]
	if up.before != got[0].after {
		t.Error("update.before is not the previous after")
	}
	if get(up.after, "label") != "person" || get(up.after, "camera") != "cam01" || get(up.after, "score") != 0.9 {
		t.Errorf("update.after %s", packet.PyStr(up.after))
	}
	if packet.PyStr(get(up.after, "current_zones")) != `["door"]` || packet.PyStr(get(up.after, "entered_zones")) != `["door"]` {
		t.Errorf("zones %s", packet.PyStr(up.after))
	}
	last := got[3].after
	if get(last, "top_score") != 0.9 || get(last, "score") != 0.8 || packet.PyStr(get(last, "current_zones")) != "[]" ||
		packet.PyStr(get(last, "entered_zones")) != `["door"]` || get(last, "start_time") != get(got[0].after, "start_time") {
		t.Errorf("accumulated state %s", packet.PyStr(last))
	}
	if get(last, "box") == nil || packet.PyStr(get(last, "box")) != "[110.0, 10.0, 130.0, 50.0]" || get(last, "area") != 800.0 {
		t.Errorf("box/area %s", packet.PyStr(last))
	}
	for _, e := range got[4:] {
		if get(e.after, "end_time") == nil || get(e.after, "active") != false || e.p.Ack != nil {
			t.Errorf("end message %s (ack %v)", packet.PyStr(e.after), e.p.Ack != nil)
		}
		if get(e.before, "end_time") != nil {
			t.Error("end.before has an end_time")
		}
	}
	if m := metrics(n); m["new_total"] != 2 || m["update_total"] != 2 || m["end_total"] != 2 || m["open_tracks"] != 0 {
		t.Errorf("metrics %v", m)
	}
}

// A track that goes quiet ends on its own after end_after_sec, without
// another input.
func TestFrigateEndsAQuietTrack(t *testing.T) {
	n := build(t, frigateN, packet.MapOf("end_after_sec", 0.05))
	c := &plugintest.Collector{}
	if err := n.(plugin.Processor).Process(context.Background(), evPkt("cam01", int64(7), 0, 1, 0.5, ""), c); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the quiet track to end", func() bool { return len(c.Packets()) == 2 })
	got := frigateMsgs(t, c.Packets())
	if got[0].typ != "new" || got[1].typ != "end" {
		t.Fatalf("types %s, %s", got[0].typ, got[1].typ)
	}
	if err := n.(plugin.Flusher).Flush(context.Background(), c); err != nil || len(c.Packets()) != 2 {
		t.Errorf("flush after the end: %v, %d messages", err, len(c.Packets()))
	}
}

// Without a track_id an event is new and ends at once; max_tracks bounds
// the state by ending the least recently seen track first.
func TestFrigateOneShotAndEviction(t *testing.T) {
	n := build(t, frigateN, nil)
	got := frigateMsgs(t, plugintest.Process(t, n, evPkt("cam02", nil, 0, 5, 0.5, "")))
	if len(got) != 2 || got[0].typ != "new" || got[1].typ != "end" || got[1].p.Ack != nil && got[0].p.Ack != nil {
		t.Fatalf("one-shot: %d messages", len(got))
	}

	m := build(t, frigateN, packet.MapOf("max_tracks", int64(1)))
	got = frigateMsgs(t, plugintest.Process(t, m, evPkt("cam01", int64(1), 0, 5, 0.5, ""), evPkt("cam01", int64(2), 1, 5, 0.5, "")))
	var types []string
	for _, g := range got {
		types = append(types, g.typ+packet.PyStr(get(g.after, "event_id"))[len("e-cam01-"):len("e-cam01-")+1])
	}
	if strings.Join(types, " ") != "new1 end1 new2 end2" {
		t.Errorf("eviction order %v", types)
	}
	if metrics(m)["evicted_total"] != 1 {
		t.Errorf("metrics %v", metrics(m))
	}
}

func TestFrigateBadInput(t *testing.T) {
	for _, cfg := range []*packet.Map{
		packet.MapOf("end_after_sec", 0.0),
		packet.MapOf("max_tracks", int64(0)),
		packet.MapOf("out_kind", ""),
	} {
		if err := buildErr(frigateN, cfg); err == nil {
			t.Errorf("%s accepted", packet.PyStr(cfg))
		}
	}
	n := build(t, frigateN, nil)
	noCam := packet.New("event", "x", packet.MapOf("track_id", int64(1)), "2026-02-14T00:00:00Z", nil)
	err := n.(plugin.Processor).Process(context.Background(), noCam, &plugintest.Collector{})
	if !isDrop(err) || !strings.Contains(err.Error(), "camera_id") {
		t.Errorf("event without camera_id: %v", err)
	}
	notMap := packet.New("event", "x", "text", "2026-02-14T00:00:00Z", nil)
	if err := n.(plugin.Processor).Process(context.Background(), notMap, &plugintest.Collector{}); !isDrop(err) {
		t.Errorf("non-mapping payload: %v", err)
	}
}
