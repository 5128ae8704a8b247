package nodes

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/event"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// FrigateConfig is FrigateEventNode's config.
type FrigateConfig struct {
	EndAfterSec plugin.Seconds `yaml:"end_after_sec" doc:"A track not seen for this long (processing time) is ended: one type=end message. Events without a track_id are new and end at once."`
	MaxTracks   int            `yaml:"max_tracks" doc:"Tracks followed at once; a new track beyond it ends the least recently seen one first (bounded memory)."`
	OutKind     string         `yaml:"out_kind" doc:"Kind of the emitted packets."`
}

// Validate bounds the config.
func (c *FrigateConfig) Validate() error {
	var errs []error
	if !(c.EndAfterSec > 0) || c.EndAfterSec > 1e6 {
		errs = append(errs, plugin.Errorf("end_after_sec", "must be a number of seconds above 0 and at most 1e6 (got %v)", float64(c.EndAfterSec)))
	}
	if c.MaxTracks < 1 || c.MaxTracks > 1_000_000 {
		errs = append(errs, plugin.Errorf("max_tracks", "must be between 1 and 1000000 (got %d)", c.MaxTracks))
	}
	if c.OutKind == "" {
		errs = append(errs, plugin.Errorf("out_kind", "must not be empty"))
	}
	return errors.Join(errs...)
}

func registerFrigate(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[FrigateConfig]{
		Name: headPack + "FrigateEventNode",
		Role: plugin.RoleNode, In: []string{"event"}, Out: []string{"frigate_event"},
		Summary: "Turn protocol v0.2 events into Frigate-shaped messages (type new|update|end, before/after) for frigate/events consumers such as Home Assistant.",
		Description: "Follows each object by (camera_id, track_id): its first event emits `type: new`, later ones `type: update` " +
			"with `before` the previous state, and once the track has not been seen for end_after_sec a `type: end` " +
			"with end_time set (also for every open track when the input ends). The object carries Frigate's keys " +
			"(id, camera, label, score, top_score, box, area, ratio, region, frame_time, start_time, end_time, " +
			"current_zones, entered_zones, has_snapshot, ...) plus severity, event_type, site_id and event_id. " +
			"Send it with MqttSink to topic `frigate/events` (docs/connectors-mqtt.md). new/update messages carry " +
			"their input's ack; end messages are made by the node and carry none.",
		Defaults: FrigateConfig{EndAfterSec: 10, MaxTracks: 10000, OutKind: "frigate_event"},
		Metrics: []plugin.MetricSpec{
			{Name: "new_total", Help: "type=new messages (objects first seen)."},
			{Name: "update_total", Help: "type=update messages."},
			{Name: "end_total", Help: "type=end messages."},
			{Name: "evicted_total", Help: "Tracks ended early because max_tracks were open."},
			{Name: "open_tracks", Help: "Tracks currently followed.", Gauge: true},
			{Name: "skipped_total", Help: "Events dropped: no camera_id (they cannot be followed).", Loss: true},
		},
		NewProcessor: func(c FrigateConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			return &frigate{Counters: cs, cfg: c, end: c.EndAfterSec.Duration(), tracks: map[string]*list.Element{}, order: list.New(),
				news: cs.Get("new_total"), updates: cs.Get("update_total"), ends: cs.Get("end_total"),
				evicted: cs.Get("evicted_total"), open: cs.Get("open_tracks"), skipped: cs.Get("skipped_total")}, nil
		},
	})
}

// followed is one object being followed: its last state and its end timer.
type followed struct {
	key   string
	after *packet.Map
	seen  time.Time
	timer *time.Timer
	done  bool // ended: a timer that fires late finds it done
}

type frigate struct {
	*plugin.Counters
	cfg FrigateConfig
	end time.Duration

	mu     sync.Mutex
	out    plugin.Emitter // for the timers; the runtime's Emitter is safe from any goroutine for a Flusher
	closed bool
	wg     sync.WaitGroup
	tracks map[string]*list.Element // of *followed, least recently seen first
	order  *list.List

	news, updates, ends, evicted, skipped *plugin.Counter
	open                                  *plugin.Counter // gauge: tracks followed now
}

func (f *frigate) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	ev, err := eventPayload(p)
	if err != nil {
		return err
	}
	camera := strOf(ev, "camera_id")
	if camera == "" {
		f.skipped.Add(1)
		return plugin.DropPacket(fmt.Errorf("event without camera_id: cannot follow it"))
	}
	tid, hasTrack := ev.Get("track_id")
	if tid == nil {
		hasTrack = false
	}
	now := time.Now()
	frameTime := epochOf(strOf(ev, "ts"), p.TS, now)

	if !hasTrack {
		// A one-shot object: new, then end at once; the input's ack goes
		// with the end, the last message it causes.
		after := frigateObject(event.ID("frigate:"+strOf(ev, "event_id")), camera, ev, frameTime, nil)
		endObj := after.Clone(0)
		endObj.Set("end_time", frameTime)
		endObj.Set("active", false)
		f.news.Add(1)
		f.ends.Add(1)
		if err := out.Emit(f.message(p, "new", after, after, false)); err != nil {
			return err
		}
		return out.Emit(f.message(p, "end", after, endObj, true))
	}

	key := camera + "\x00" + packet.PyStr(tid)
	var ready []*packet.Packet
	f.mu.Lock()
	f.out = out
	var msg *packet.Packet
	if e, ok := f.tracks[key]; ok {
		t := e.Value.(*followed)
		before := t.after
		t.after = frigateObject(strOf(before, "id"), camera, ev, frameTime, before)
		t.seen = now
		t.timer.Reset(f.end)
		f.order.MoveToBack(e)
		msg = f.message(p, "update", before, t.after, true)
		f.updates.Add(1)
	} else {
		if f.order.Len() >= f.cfg.MaxTracks {
			ready = append(ready, f.endTrack(f.order.Front()))
			f.evicted.Add(1)
		}
		id := event.ID(fmt.Sprintf("frigate:%s:%s", key, strOf(ev, "ts")))
		t := &followed{key: key, after: frigateObject(id, camera, ev, frameTime, nil), seen: now}
		t.timer = time.AfterFunc(f.end, func() { f.expire(t) })
		f.tracks[key] = f.order.PushBack(t)
		msg = f.message(p, "new", t.after, t.after, true)
		f.news.Add(1)
	}
	f.open.Store(int64(f.order.Len()))
	f.mu.Unlock()
	for _, q := range ready {
		if err := out.Emit(q); err != nil {
			return err
		}
	}
	return out.Emit(msg)
}

// endTrack removes a track and builds its end message; called with mu held.
func (f *frigate) endTrack(e *list.Element) *packet.Packet {
	t := f.order.Remove(e).(*followed)
	delete(f.tracks, t.key)
	t.done = true
	t.timer.Stop()
	endObj := t.after.Clone(0)
	endObj.Set("end_time", float64(t.seen.UnixMicro())/1e6)
	endObj.Set("active", false)
	f.ends.Add(1)
	return f.message(nil, "end", t.after, endObj, false)
}

// expire ends t from its timer's goroutine, unless it was seen or ended since.
func (f *frigate) expire(t *followed) {
	f.mu.Lock()
	if t.done || f.closed || f.out == nil || time.Since(t.seen) < f.end {
		f.mu.Unlock()
		return
	}
	out := f.out
	f.wg.Add(1)
	msg := f.endTrack(f.tracks[t.key])
	f.open.Store(int64(f.order.Len()))
	f.mu.Unlock()
	defer f.wg.Done()
	_ = out.Emit(msg) // an emit that fails ends the run
}

// Flush ends every open track (the input ended) and waits for the ends a
// timer is emitting.
func (f *frigate) Flush(_ context.Context, out plugin.Emitter) error {
	f.mu.Lock()
	var ready []*packet.Packet
	for f.order.Len() > 0 {
		ready = append(ready, f.endTrack(f.order.Front()))
	}
	f.open.Store(0)
	f.mu.Unlock()
	f.wg.Wait()
	for _, q := range ready {
		if err := out.Emit(q); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the timers; open tracks end without a message (the run was
// cancelled before the end of input).
func (f *frigate) Close(context.Context) error {
	f.mu.Lock()
	f.closed = true
	for e := f.order.Front(); e != nil; e = e.Next() {
		t := e.Value.(*followed)
		t.done = true
		t.timer.Stop()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return nil
}

// message is one frigate/events message; from, when it carries the
// input's ack, is the event it answers.
func (f *frigate) message(from *packet.Packet, typ string, before, after *packet.Map, withAck bool) *packet.Packet {
	q := &packet.Packet{ID: packet.NewID(), Kind: f.cfg.OutKind, SourceID: strOf(after, "camera"),
		Payload: packet.MapOf("type", typ, "before", before, "after", after)}
	if from != nil {
		q.TS = from.TS
		q.Meta = from.Meta
		if withAck {
			q.Ack, q.Nack = from.Ack, from.Nack
		}
	} else {
		q.TS = packet.FormatTS(time.Now())
	}
	return q
}

// frigateObject is the state of one object in Frigate's event shape, built
// from a protocol v0.2 event; prev (nil for a new object) carries what
// accumulates: start_time, top_score, entered_zones, position_changes.
func frigateObject(id, camera string, ev *packet.Map, frameTime float64, prev *packet.Map) *packet.Map {
	score := 0.0
	if v, ok := ev.Get("confidence"); ok {
		score, _ = event.Float(v)
	}
	box := []any{0.0, 0.0, 0.0, 0.0}
	if b, ok := ev.Get("bbox"); ok {
		if bm, ok := b.(*packet.Map); ok {
			for i, k := range []string{"x1", "y1", "x2", "y2"} {
				v, _ := bm.Get(k)
				box[i], _ = event.Float(v)
			}
		}
	}
	w, h := box[2].(float64)-box[0].(float64), box[3].(float64)-box[1].(float64)
	area, ratio := math.Max(w, 0)*math.Max(h, 0), 0.0
	if h > 0 {
		ratio = w / h
	}
	var current []any
	if z, ok := ev.Get("zone"); ok {
		if zm, ok := z.(*packet.Map); ok {
			inside, _ := zm.Get("inside")
			if in, _ := inside.(bool); in {
				if zid := strOf(zm, "zone_id"); zid != "" {
					current = []any{zid}
				}
			}
		}
	}
	if current == nil {
		current = []any{}
	}
	start, top, changes, still := frameTime, score, int64(0), false
	entered := []any{}
	if prev != nil {
		v, _ := prev.Get("start_time")
		start, _ = v.(float64)
		v, _ = prev.Get("top_score")
		if t, _ := v.(float64); t > top {
			top = t
		}
		v, _ = prev.Get("entered_zones")
		old, _ := v.([]any)
		entered = append(entered, old...)
		v, _ = prev.Get("position_changes")
		changes, _ = v.(int64)
		if v, _ := prev.Get("box"); sameBox(v, box) {
			still = true
		} else {
			changes++
		}
	}
	for _, z := range current {
		if !containsAny(entered, z) {
			entered = append(entered, z)
		}
	}
	snap, _ := ev.Get("snapshot_path")
	label := strOf(ev, "object_type")
	return packet.MapOf(
		"id", id,
		"camera", camera,
		"frame_time", frameTime,
		"snapshot_time", frameTime,
		"label", lower(label),
		"sub_label", nil,
		"top_score", top,
		"false_positive", false,
		"start_time", start,
		"end_time", nil,
		"score", score,
		"box", box,
		"area", area,
		"ratio", ratio,
		"region", box,
		"active", true,
		"stationary", still, // the box did not move since the last event
		"motionless_count", int64(0),
		"position_changes", changes,
		"current_zones", current,
		"entered_zones", entered,
		"has_clip", false,
		"has_snapshot", snap != nil,
		"attributes", packet.NewMap(0),
		"current_attributes", []any{},
		"severity", getOrNil(ev, "severity"),
		"event_type", getOrNil(ev, "event_type"),
		"site_id", getOrNil(ev, "site_id"),
		"event_id", getOrNil(ev, "event_id"),
	)
}

func sameBox(v any, box []any) bool {
	old, ok := v.([]any)
	if !ok || len(old) != len(box) {
		return false
	}
	for i := range box {
		if old[i] != box[i] {
			return false
		}
	}
	return true
}

func containsAny(xs []any, x any) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// lower is ASCII lower case: PERSON becomes Frigate's person.
func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// strOf is m[k] when it is a string, "" otherwise.
func strOf(m *packet.Map, k string) string {
	if m == nil {
		return ""
	}
	v, _ := m.Get(k)
	s, _ := v.(string)
	return s
}

// epochOf is an ISO-8601 timestamp as Unix seconds: the event's ts, else
// the packet's, else now.
func epochOf(ts, packetTS string, now time.Time) float64 {
	for _, s := range []string{ts, packetTS} {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return float64(t.UnixMicro()) / 1e6
		}
	}
	return float64(now.UnixMicro()) / 1e6
}

// getOrNil is m[k], nil when absent.
func getOrNil(m *packet.Map, k string) any { v, _ := m.Get(k); return v }
