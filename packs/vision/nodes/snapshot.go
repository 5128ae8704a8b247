package nodes

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/packs/vision/snapshot"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SnapshotConfig is EventSnapshotNode's config (upstream's events.snapshot).
type SnapshotConfig struct {
	BaseDir      string `yaml:"base_dir" required:"true" doc:"Directory under which snapshots are written as <site_id>/<camera_id>/<ts>[_<track_id>].jpg (created at start)."`
	PublicPrefix string `yaml:"public_prefix" doc:"When set, snapshot_path = public_prefix + \"/\" + the path relative to base_dir (a URL or web path); else the file path."`
}

// Validate requires a base directory.
func (c *SnapshotConfig) Validate() error {
	if strings.TrimSpace(c.BaseDir) == "" {
		return plugin.Errorf("base_dir", "must not be empty")
	}
	return nil
}

func registerSnapshot(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[SnapshotConfig]{
		Name: headPack + "EventSnapshotNode",
		Role: plugin.RoleNode, In: []string{"event"}, Out: []string{"event"},
		Stability: plugin.Beta,
		Summary:   "Write each event's frame as a JPEG snapshot and set payload.snapshot_path; place it after dedup.",
		Description: "Reads the decoded frame that the detector put in meta.frame (in-process only), writes it as JPEG " +
			"(quality 95) to base_dir/<site_id>/<camera_id>/<ts>[_<track_id>].jpg, with every component sanitised to " +
			"[0-9A-Za-z_-] (no path traversal from ids), atomically and never overwriting (a taken name gets _1, _2, ...), " +
			"then sets snapshot_path (public_prefix form or file path) and removes meta.frame. Placed after " +
			"DedupPolicyNode, a dropped duplicate never writes a file. A failed write is logged and counted " +
			"(failed_total), the event passes with snapshot_path unchanged; events without a frame pass unchanged " +
			"(skipped_total).",
		Metrics: []plugin.MetricSpec{
			{Name: "written_total", Help: "Snapshots written (events passed with snapshot_path set)."},
			{Name: "failed_total", Help: "Snapshots that could not be written (the event passed without one)."},
			{Name: "skipped_total", Help: "Events without a frame: passed unchanged."},
		},
		NewProcessor: func(c SnapshotConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			return &snapshotNode{Counters: cs, cfg: c, env: env,
				written: cs.Get("written_total"), failed: cs.Get("failed_total"), skipped: cs.Get("skipped_total")}, nil
		},
	})
}

type snapshotNode struct {
	*plugin.Counters
	cfg                      SnapshotConfig
	env                      plugin.Env
	written, failed, skipped *plugin.Counter
}

func (s *snapshotNode) Start(context.Context) error {
	if err := os.MkdirAll(s.cfg.BaseDir, 0o755); err != nil {
		return fmt.Errorf("snapshot base_dir: %w", err)
	}
	return nil
}

func (s *snapshotNode) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	payload, isMap := p.Payload.(*packet.Map)
	v, _ := p.Meta.Get(FrameMetaKey)
	fr, isFrame := v.(*frame.Frame)
	if !isMap || !isFrame || fr == nil {
		s.skipped.Add(1)
		return out.Emit(p)
	}
	c := p.Copy()
	meta := p.Meta.Clone(0)
	meta.Delete(FrameMetaKey)
	c.Meta = meta

	str := func(k string) string {
		v, _ := payload.Get(k)
		if v == nil {
			return ""
		}
		return packet.PyStr(v)
	}
	ts := str("ts")
	if ts == "" {
		ts = time.Now().Format("20060102_150405_000000")
	}
	rel := snapshot.Rel(str("site_id"), str("camera_id"), ts, str("track_id"))
	if !fr.HasPixels() {
		return s.fail(c, out, fmt.Errorf("snapshot %s: frame has no pixels (%dx%d)", rel, fr.Width, fr.Height))
	}
	used, err := snapshot.Write(s.cfg.BaseDir, rel, fr.Image())
	if err != nil {
		return s.fail(c, out, err)
	}
	s.written.Add(1)
	next := payload.Clone(0)
	next.Set("snapshot_path", snapshot.Public(s.cfg.BaseDir, used, s.cfg.PublicPrefix))
	c.Payload = next
	return out.Emit(c)
}

// fail logs the first failure and every 100th after it, and passes the
// event on without a snapshot.
func (s *snapshotNode) fail(c *packet.Packet, out plugin.Emitter, err error) error {
	if n := s.failed.Add(1); n == 1 || n%100 == 0 {
		s.env.Logger.Warn("snapshot save failed", "error", err, "failed_total", n)
	}
	return out.Emit(c)
}

var _ plugin.Starter = (*snapshotNode)(nil)
