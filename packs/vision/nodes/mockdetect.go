package nodes

import (
	"context"
	"math"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// BBox is a configured bounding box.
type BBox struct {
	X1 int64 `yaml:"x1" doc:"Left edge."`
	Y1 int64 `yaml:"y1" doc:"Top edge."`
	X2 int64 `yaml:"x2" doc:"Right edge."`
	Y2 int64 `yaml:"y2" doc:"Bottom edge."`
}

// MockDetectorConfig is MockDetectorNode's config.
type MockDetectorConfig struct {
	EmitEveryN int64   `yaml:"emit_every_n" doc:"Emit a detection for frames whose frame_idx is a multiple of this; values below 1 count as 1."`
	EventType  string  `yaml:"event_type" doc:"event_type of the detections."`
	ObjectType string  `yaml:"object_type" doc:"object_type of the detections."`
	Severity   string  `yaml:"severity" doc:"severity of the detections."`
	Confidence float64 `yaml:"confidence" doc:"confidence of the detections."`
	TrackID    any     `yaml:"track_id" doc:"\"frame_idx\" (track id = the frame index) or an integer constant; null means 0."`
	BBox       BBox    `yaml:"bbox" doc:"Bounding box of the detections."`
	BBoxDX     int64   `yaml:"bbox_dx" doc:"Added times frame_idx to x1 and x2, so the box moves across frames."`

	trackFromFrame bool
	trackConst     int64
}

// Validate resolves track_id.
func (c *MockDetectorConfig) Validate() error {
	switch v := c.TrackID.(type) {
	case nil:
		c.trackConst = 0
	case string:
		s := strings.TrimSpace(v)
		if s == "frame_idx" {
			c.trackFromFrame = true
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return plugin.Errorf("track_id", "must be \"frame_idx\" or an integer, got %q", v)
		}
		c.trackConst = n
	case int64:
		c.trackConst = v
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<62 {
			return plugin.Errorf("track_id", "must be \"frame_idx\" or an integer, got %s", packet.PyFloat(v))
		}
		c.trackConst = int64(v)
	default:
		return plugin.Errorf("track_id", "must be \"frame_idx\" or an integer, got %s", packet.PyStr(v))
	}
	return nil
}

func registerMockDetector(r *plugin.Registry) {
	name, aliases := names("mock_detection", "MockDetectorNode")
	plugin.Register(r, plugin.Spec[MockDetectorConfig]{
		Name: name, Aliases: aliases,
		Role: plugin.RoleNode, In: []string{"frame"}, Out: []string{"detection"},
		Summary: "Emit one deterministic detection per frame (frame_idx multiple of emit_every_n), for tests and demos.",
		Description: "The detection packet keeps the frame's source_id and ts; its meta is the frame's plus frame_idx. " +
			"Payload keys, in order: bbox (+ bbox_dx*frame_idx on x1 and x2), confidence, event_type, object_type, " +
			"severity, track_id. When the frame payload holds a decoded frame, meta.frame carries it (in-process only) " +
			"so that EventSnapshotNode can write it after dedup; sinks and the durable queue leave meta.frame out.",
		Defaults: MockDetectorConfig{
			EmitEveryN: 1, EventType: "ZONE_INTRUSION", ObjectType: "PERSON", Severity: "LOW", Confidence: 0.75,
			TrackID: "frame_idx", BBox: BBox{X1: 10, Y1: 20, X2: 200, Y2: 260},
		},
		Metrics: []plugin.MetricSpec{
			{Name: "emitted_total", Help: "Detection packets emitted."},
		},
		NewProcessor: func(c MockDetectorConfig, env plugin.Env) (plugin.Processor, error) {
			c.EmitEveryN = max(1, c.EmitEveryN)
			cs := env.Counters()
			return &mockDetector{Counters: cs, cfg: c, emitted: cs.Get("emitted_total")}, nil
		},
	})
}

type mockDetector struct {
	*plugin.Counters
	cfg     MockDetectorConfig
	emitted *plugin.Counter
}

func (d *mockDetector) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	payload, idx, err := frameIdx(p)
	if err != nil {
		return err
	}
	if idx%d.cfg.EmitEveryN != 0 {
		return nil
	}
	c := &d.cfg
	track := c.trackConst
	if c.trackFromFrame {
		track = idx
	}
	dx := c.BBoxDX * idx
	det := packet.MapOf(
		"bbox", packet.MapOf("x1", c.BBox.X1+dx, "y1", c.BBox.Y1, "x2", c.BBox.X2+dx, "y2", c.BBox.Y2),
		"confidence", c.Confidence,
		"event_type", c.EventType,
		"object_type", c.ObjectType,
		"severity", c.Severity,
		"track_id", track,
	)
	meta := p.Meta.Clone(2)
	meta.Set("frame_idx", idx)
	if f, ok := payload.Get("frame"); ok {
		if fr, isFrame := f.(*frame.Frame); isFrame && fr != nil {
			meta.Set(FrameMetaKey, fr)
		}
	}
	ts := p.TS
	if ts == "" {
		ts = packet.Now()
	}
	if err := out.Emit(&packet.Packet{ID: packet.NewID(), TS: ts, Kind: "detection", SourceID: p.SourceID, Payload: det, Meta: meta}); err != nil {
		return err
	}
	d.emitted.Add(1)
	return nil
}

// FrameMetaKey is the meta key under which detectors hand the decoded
// frame (*frame.Frame, in-process only) to EventSnapshotNode, which removes
// it. Writers of packets leave it out (frame.Frame is a packet.Local), so an
// event written without a snapshot node has upstream's meta.
const FrameMetaKey = "frame"
