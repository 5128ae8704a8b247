package legacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/shlex"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/event"
	"github.com/schnitzel-stream/schnitzel/packs/vision/nodes"
	"github.com/schnitzel-stream/schnitzel/packs/vision/zones"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// model.mode=real: upstream loaded model.adapter as a Python class
// (module:Class) and called infer(frame). schnitzel runs detector adapters
// as child processes or HTTP servers (docs/detector-adapter.md), so
// model.adapter (or AI_MODEL_ADAPTER) names one of those:
//
//	cmd:python3 adapters/yolo.py --weights yolov8n.pt   a command line (quotes group words)
//	http://127.0.0.1:9000/detect                        an HTTP adapter
//
// A comma list builds upstream's composite: adapters are asked in order
// and their detections concatenated; one that fails a frame is skipped for
// that frame. Class map and tracker come from upstream's adapter-level
// variables: MODEL_CLASS_MAP_PATH, TRACKER_TYPE, TRACKER_IOU,
// TRACKER_MAX_AGE; AI_MODEL_ADAPTER_TIMEOUT_SEC and
// AI_MODEL_ADAPTER_MAX_RESTARTS set the adapter's per-frame deadline and
// restart budget.

// adapterPlugin is the v2 node every real-mode adapter runs in.
const adapterPlugin = "schnitzel_stream.packs.vision.nodes:ModelAdapterDetectorNode"

// adapterSpec is one entry of model.adapter.
type adapterSpec struct {
	text    string   // as written, for messages
	command []string // cmd: form
	url     string   // http(s) form
}

// parseAdapters splits model.adapter into adapters schnitzel can run. A
// comma starts a new adapter only before "cmd:" or "http", so a command
// line may hold commas.
func parseAdapters(spec string) ([]adapterSpec, error) {
	var parts []string
	for _, p := range strings.Split(spec, ",") {
		t := strings.TrimSpace(p)
		if t == "" {
			continue
		}
		if n := len(parts); n > 0 && !startsAdapter(t) && strings.HasPrefix(parts[n-1], "cmd:") {
			parts[n-1] += "," + p
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return nil, errors.New("model.mode=real needs model.adapter (or AI_MODEL_ADAPTER): a detector adapter as " +
			"cmd:<program and arguments> or an http(s) URL (docs/detector-adapter.md), or set model.mode: mock")
	}
	out := make([]adapterSpec, 0, len(parts))
	for _, p := range parts {
		switch {
		case strings.HasPrefix(p, "cmd:"):
			argv, err := shlex.Split(strings.TrimPrefix(p, "cmd:"))
			if err != nil {
				return nil, fmt.Errorf("model.adapter %q: %w", p, err)
			}
			if len(argv) == 0 {
				return nil, fmt.Errorf("model.adapter %q: cmd: needs a program", p)
			}
			out = append(out, adapterSpec{text: p, command: argv})
		case strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://"):
			out = append(out, adapterSpec{text: p, url: p})
		default:
			return nil, fmt.Errorf("model.adapter %q is a Python class, which schnitzel cannot load: run the model as a "+
				"detector adapter and name it cmd:<program and arguments> or an http(s) URL (docs/detector-adapter.md; "+
				"scripts/adapters/ shows how to wrap a Python model), or set model.mode: mock", p)
		}
	}
	return out, nil
}

func startsAdapter(s string) bool {
	return strings.HasPrefix(s, "cmd:") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// realModel asks the adapters for each sampled frame's detections.
type realModel struct {
	adapters []*modelAdapter
	log      *slog.Logger
}

type modelAdapter struct {
	spec  adapterSpec
	node  plugin.Processor
	fails int64 // frames in a row this adapter failed
}

// newRealModel builds and starts one ModelAdapterDetectorNode per adapter.
func newRealModel(ctx context.Context, spec, root string, getenv func(string) string, log *slog.Logger) (*realModel, error) {
	specs, err := parseAdapters(spec)
	if err != nil {
		return nil, err
	}
	base, err := adapterBaseConfig(root, getenv, log)
	if err != nil {
		return nil, err
	}
	m := &realModel{log: log}
	for i, sp := range specs {
		cfg := base
		cfg.Command = sp.command
		cfg.URL = sp.url
		id := "model"
		if len(specs) > 1 {
			id = "model" + strconv.Itoa(i)
		}
		n, err := nodes.NewModelAdapter(cfg, plugin.Env{NodeID: id, Kind: "node", Plugin: adapterPlugin, Logger: log})
		if err != nil {
			m.close()
			return nil, fmt.Errorf("model adapter %q: %s", sp.text, envNamed(err.Error()))
		}
		a := &modelAdapter{spec: sp, node: n}
		m.adapters = append(m.adapters, a)
		if st, ok := n.(plugin.Starter); ok {
			if err := st.Start(ctx); err != nil {
				m.close()
				return nil, fmt.Errorf("model adapter %q: %w", sp.text, err)
			}
		}
	}
	return m, nil
}

// envNumbers are the adapter settings read from numeric environment
// variables; the node's config checks their ranges.
var envNumbers = []struct {
	env, key string
	integer  bool
	set      func(c *nodes.ModelAdapterConfig, i int64, f float64)
}{
	{"TRACKER_IOU", "tracker_iou", false, func(c *nodes.ModelAdapterConfig, _ int64, f float64) { c.TrackerIoU = f }},
	{"TRACKER_MAX_AGE", "tracker_max_age", true, func(c *nodes.ModelAdapterConfig, i int64, _ float64) { c.TrackerMaxAge = i }},
	// ours: upstream ran models in-process, with no deadline and no restarts
	{"AI_MODEL_ADAPTER_TIMEOUT_SEC", "timeout_sec", false, func(c *nodes.ModelAdapterConfig, _ int64, f float64) {
		c.TimeoutSec = plugin.Seconds(f)
	}},
	{"AI_MODEL_ADAPTER_MAX_RESTARTS", "max_restarts", true, func(c *nodes.ModelAdapterConfig, i int64, _ float64) { c.MaxRestarts = i }},
}

// envNamed says which environment variable set a config key the node
// refused ("config.tracker_iou: ..." → "TRACKER_IOU (config.tracker_iou): ...").
func envNamed(msg string) string {
	for _, n := range envNumbers {
		msg = strings.Replace(msg, "config."+n.key+":", n.env+" (config."+n.key+"):", 1)
	}
	return msg
}

// adapterBaseConfig is the detector config every adapter shares: the
// node's defaults with upstream's adapter-level environment variables.
func adapterBaseConfig(root string, getenv func(string) string, log *slog.Logger) (nodes.ModelAdapterConfig, error) {
	cfg := nodes.DefaultModelAdapterConfig()
	tracker := strings.ToLower(strings.TrimSpace(getenv("TRACKER_TYPE")))
	switch tracker {
	case "", "none":
		tracker = "none"
	case "iou", "bytetrack":
	default:
		log.Warn("unsupported TRACKER_TYPE, using no tracker", "tracker_type", tracker)
		tracker = "none"
	}
	cfg.Tracker = tracker
	for _, n := range envNumbers {
		v := strings.TrimSpace(getenv(n.env))
		if v == "" {
			continue
		}
		i, ierr := strconv.ParseInt(v, 10, 64)
		f, ferr := strconv.ParseFloat(v, 64)
		switch {
		case n.integer && ierr != nil:
			return cfg, fmt.Errorf("%s=%q: not an integer", n.env, v)
		case !n.integer && ferr != nil:
			return cfg, fmt.Errorf("%s=%q: not a number", n.env, v)
		}
		n.set(&cfg, i, f)
	}
	if p := strings.TrimSpace(getenv("MODEL_CLASS_MAP_PATH")); p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		// upstream falls back to the default map when the file is missing;
		// a file that exists but is broken is an error here (not there).
		if _, err := os.Stat(p); err == nil {
			cfg.ClassMapPath = p
		}
	}
	return cfg, nil
}

// detections runs the frame packet through every adapter, in order, and
// returns their detection packets. A frame an adapter fails (timeout,
// crash, garbage, its own error) yields nothing from that adapter, logged
// on the 1st and every 10th failure in a row, as upstream's composite did;
// an adapter that cannot be restarted any more ends the run.
func (m *realModel) detections(ctx context.Context, pk *packet.Packet) ([]*packet.Packet, error) {
	var out collector
	for _, a := range m.adapters {
		n := len(out)
		err := a.node.Process(ctx, pk, &out)
		if err == nil {
			a.fails = 0
			continue
		}
		var pe *plugin.PacketError
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("model adapter %q: %w", a.spec.text, err)
		}
		out = out[:n]
		if a.fails++; a.fails == 1 || a.fails%10 == 0 {
			m.log.Warn("model adapter failed a frame; skipping it for this frame", "adapter", a.spec.text,
				"consecutive_failures", a.fails, "error", pe.Err)
		}
	}
	return out, nil
}

func (m *realModel) close() {
	for _, a := range m.adapters {
		closeNode(a.node)
	}
}

// collector is the Emitter the adapter nodes write their detections to.
type collector []*packet.Packet

func (c *collector) Emit(p *packet.Packet) error { *c = append(*c, p); return nil }

func (c *collector) EmitPort(_ string, p *packet.Packet) error { return c.Emit(p) }

// realEvents turns one frame's detections into events as upstream's
// RealModelEventBuilder did: one wall-clock ts for the whole frame, a
// random event_id each, the scaffold's zone and snapshot_path, and the
// detection's fields. Invalid detections (event.Valid: a PERSON without a
// track id, for one) are skipped.
func (p *pipeline) realEvents(dets []*packet.Packet) []*packet.Map {
	if len(dets) == 0 {
		return nil
	}
	ts := isoformat(time.Now().In(p.loc))
	out := make([]*packet.Map, 0, len(dets))
	for _, d := range dets {
		det, _ := d.Payload.(*packet.Map)
		get := func(k string) any { v, _ := det.Get(k); return v }
		var conf float64
		valid := det != nil && event.Valid(det)
		if valid {
			conf, valid = event.Float(get("confidence"))
		}
		if !valid {
			p.log.Warn("invalid model detection, skipping", "error_code", "MODEL_DET_INVALID",
				"reason", "needs bbox {x1,y1,x2,y2}, a numeric confidence, event_type, object_type, severity, and a track_id for PERSON")
			continue
		}
		out = append(out, packet.MapOf(
			"event_id", packet.NewID(),
			"ts", ts,
			"site_id", p.s.SiteID,
			"camera_id", p.s.CameraID,
			"event_type", get("event_type"),
			"object_type", get("object_type"),
			"severity", get("severity"),
			"track_id", get("track_id"),
			"bbox", get("bbox"),
			"confidence", conf,
			"zone", zones.Result("", false),
			"snapshot_path", nil,
		))
	}
	return out
}
