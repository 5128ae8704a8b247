package nodes

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/event"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// EventBuilderConfig is ProtocolV02EventBuilderNode's config.
type EventBuilderConfig struct {
	SiteID   string `yaml:"site_id" required:"true" doc:"site_id of every event."`
	CameraID string `yaml:"camera_id" doc:"camera_id of every event; empty: the detection packet's source_id."`
}

// Validate trims the ids and requires a site.
func (c *EventBuilderConfig) Validate() error {
	c.SiteID = strings.TrimSpace(c.SiteID)
	c.CameraID = strings.TrimSpace(c.CameraID)
	if c.SiteID == "" {
		return plugin.Errorf("site_id", "must not be empty")
	}
	return nil
}

func registerEventBuilder(r *plugin.Registry) {
	name, aliases := names("event_builder", "ProtocolV02EventBuilderNode")
	plugin.Register(r, plugin.Spec[EventBuilderConfig]{
		Name: name, Aliases: aliases,
		Role: plugin.RoleNode, In: []string{"detection"}, Out: []string{"event"},
		Summary: "Turn detections into protocol v0.2 events with deterministic ids.",
		Description: "The payload is one detection (mapping) or a list of them (non-mappings ignored); null emits " +
			"nothing. A detection needs bbox {x1,y1,x2,y2}, confidence, event_type, object_type, severity and, for " +
			"PERSON, a non-null track_id; others are skipped (skipped_total). Each event packet (kind event, " +
			"source_id = camera_id, ts = the detection's ts) carries the payload in protocol key order, with " +
			"event_id = UUIDv5 of meta.idempotency_key " +
			"`event:{site}:{camera}:{event_type}:{object_type}:{track|na}:{ts}:{x1}:{y1}:{x2}:{y2}` (byte-identical " +
			"to upstream) and meta.source_packet_id.",
		Metrics: []plugin.MetricSpec{
			{Name: "emitted_total", Help: "Event packets emitted."},
			{Name: "skipped_total", Help: "Detections skipped: not a valid PERSON detection with a track_id, or no event could be built."},
		},
		NewProcessor: func(c EventBuilderConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			return &eventBuilder{Counters: cs, cfg: c, env: env, emitted: cs.Get("emitted_total"), skipped: cs.Get("skipped_total")}, nil
		},
	})
}

type eventBuilder struct {
	*plugin.Counters
	cfg              EventBuilderConfig
	env              plugin.Env
	emitted, skipped *plugin.Counter
	warnedConf       atomic.Bool
}

func (b *eventBuilder) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	var dets []*packet.Map
	switch x := p.Payload.(type) {
	case nil:
		return nil
	case *packet.Map:
		dets = []*packet.Map{x}
	case []any:
		for _, d := range x {
			if m, ok := d.(*packet.Map); ok {
				dets = append(dets, m)
			}
		}
	default:
		return plugin.DropPacket(fmt.Errorf("detection payload must be a mapping, a list of mappings or null, got %T", p.Payload))
	}
	camera := b.cfg.CameraID
	if camera == "" {
		camera = p.SourceID
	}
	ts := p.TS
	if ts == "" {
		ts = packet.Now()
	}
	for _, det := range dets {
		if !event.Valid(det) {
			b.skipped.Add(1)
			continue
		}
		payload, key, ok := event.Build(b.cfg.SiteID, camera, p.TS, det)
		if !ok {
			b.skipped.Add(1)
			if !b.warnedConf.Swap(true) {
				c, _ := det.Get("confidence")
				b.env.Logger.Warn("detection skipped: confidence is not a number (further ones are only counted)",
					"confidence", packet.PyStr(c))
			}
			continue
		}
		if p.TS == "" {
			payload.Set("ts", ts)
		}
		meta := p.Meta.Clone(2)
		meta.Set("idempotency_key", key)
		meta.Set("source_packet_id", p.ID)
		if err := out.Emit(&packet.Packet{ID: packet.NewID(), TS: ts, Kind: "event", SourceID: camera, Payload: payload, Meta: meta}); err != nil {
			return err
		}
		b.emitted.Add(1)
	}
	return nil
}
