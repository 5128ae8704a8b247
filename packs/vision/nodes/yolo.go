package nodes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// YoloConfig is YoloV8DetectorNode's config: HEAD's keys plus the adapter
// keys of ModelAdapterDetectorNode (ours).
type YoloConfig struct {
	ModelPath string  `yaml:"model_path" doc:"Model file, passed to the adapter in params.model_path (the adapter loads it)."`
	Conf      float64 `yaml:"conf" doc:"Confidence threshold (0..1), passed to the adapter and applied again here."`
	IOU       float64 `yaml:"iou" doc:"NMS IoU threshold (0..1), passed to the adapter."`
	MaxDet    int64   `yaml:"max_det" doc:"At most this many detections per frame (min 1), passed to the adapter and applied here."`
	Classes   any     `yaml:"classes" doc:"Only these class ids: a list or \"0,1,2\"; null = all. Passed to the adapter and applied here."`
	Device    string  `yaml:"device" doc:"Inference device (\"cpu\", \"0\"), passed to the adapter."`

	// The adapter keys (ours): command (required unless url is set:
	// without an adapter the graph is invalid, see docs/detector-adapter.md), url, ...
	AdapterConfig `yaml:",inline"`

	classes []int64
}

// Validate clamps like HEAD (conf and iou to 0..1, max_det >= 1) and parses
// classes. A missing adapter is a validation error: the node could only
// fail at start (HEAD's graphs need command or url added, docs/compat.md).
func (c *YoloConfig) Validate() error {
	var errs []error // every problem at once
	if len(c.Command) == 0 && strings.TrimSpace(c.URL) == "" {
		errs = append(errs, plugin.Errorf("command", "YOLO inference needs a model adapter: schnitzel runs no Python and ships "+
			"no model weights, so set command (e.g. [python3, scripts/adapters/yolo_adapter.py]) or url to an adapter "+
			"that loads %s; see docs/detector-adapter.md", or(strings.TrimSpace(c.ModelPath), "models/yolov8n.pt")))
	}
	c.Conf = math.Max(0, math.Min(1, c.Conf))
	c.IOU = math.Max(0, math.Min(1, c.IOU))
	c.MaxDet = max(1, c.MaxDet)
	c.ModelPath = strings.TrimSpace(c.ModelPath)
	if c.ModelPath == "" {
		c.ModelPath = "models/yolov8n.pt"
	}
	c.Device = strings.TrimSpace(c.Device)
	switch v := c.Classes.(type) {
	case nil:
	case string:
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			n, err := strconv.ParseInt(part, 10, 64)
			if err != nil {
				errs = append(errs, plugin.Errorf("classes", "must be class ids like \"0,2\", got %q", v))
				break
			}
			c.classes = append(c.classes, n)
		}
	case []any:
		for i, x := range v {
			n, ok := x.(int64)
			if !ok {
				errs = append(errs, plugin.Errorf(fmt.Sprintf("classes[%d]", i), "must be an integer class id, got %s", packet.PyStr(x)))
				continue
			}
			c.classes = append(c.classes, n)
		}
	default:
		errs = append(errs, plugin.Errorf("classes", "must be a list of class ids or a string \"0,1\", got %s", packet.PyStr(v)))
	}
	return errors.Join(append(errs, c.AdapterConfig.validate(false))...)
}

func registerYolo(r *plugin.Registry) {
	// HEAD only (no seed spelling): the pack path and the per-file module path.
	plugin.Register(r, plugin.Spec[YoloConfig]{
		Name: headPack + "YoloV8DetectorNode", Aliases: []string{headNodes + "yolo:YoloV8DetectorNode"},
		Role: plugin.RoleNode, In: []string{"frame"}, Out: []string{"frame"},
		InProfile: plugin.ProfileInproc, OutProfile: plugin.ProfileInproc,
		Stability: plugin.Beta,
		Summary:   "YOLOv8 detection through an external model adapter; attaches payload.detections to frame packets (HEAD's shape).",
		Description: "HEAD ran ultralytics in-process; schnitzel has no Python or model weights inside, so inference runs in " +
			"a model adapter given by command or url (our keys). Without one the graph fails validation with a message pointing " +
			"to docs/detector-adapter.md (scripts/adapters/ holds a reference adapter and shows how to wrap ultralytics). " +
			"HEAD's keys travel to the adapter as params {model_path, conf, iou, max_det, classes, device}; conf, classes and " +
			"max_det are also enforced here. Output: a new frame packet (same source_id and ts) whose payload is the input's " +
			"plus detections: [{bbox {x1,y1,x2,y2} rounded to integers, confidence, class_id, class_name}], and meta plus " +
			"detection_count and model (the model file's base name). " + adapterDoc,
		Defaults: YoloConfig{
			ModelPath: "models/yolov8n.pt", Conf: 0.25, IOU: 0.45, MaxDet: 100,
			AdapterConfig: adapterDefaults,
		},
		Metrics: append([]plugin.MetricSpec{
			{Name: "emitted_total", Help: "Frame packets emitted with their detections."},
			{Name: "detected_total", Help: "Detections in the emitted packets."},
		}, runnerMetrics...),
		NewProcessor: func(c YoloConfig, env plugin.Env) (plugin.Processor, error) {
			params := packet.MapOf("model_path", c.ModelPath, "conf", c.Conf, "iou", c.IOU, "max_det", c.MaxDet)
			if len(c.classes) > 0 {
				l := make([]any, len(c.classes))
				for i, n := range c.classes {
					l[i] = n
				}
				params.Set("classes", l)
			} else {
				params.Set("classes", nil)
			}
			params.Set("device", c.Device)
			cs := env.Counters()
			y := &yoloNode{Counters: cs, cfg: c, emitted: cs.Get("emitted_total"), detected: cs.Get("detected_total")}
			y.run = newRunner("YoloV8DetectorNode", c.AdapterConfig, params, env, cs) // after the node's own: declaration order
			return y, nil
		},
	})
}

type yoloNode struct {
	*plugin.Counters  // reports them; adapter_restarts_total is read from the client
	cfg               YoloConfig
	run               *runner
	emitted, detected *plugin.Counter
}

func (y *yoloNode) Start(context.Context) error {
	if len(y.cfg.Command) == 0 && strings.TrimSpace(y.cfg.URL) == "" {
		return fmt.Errorf("YoloV8DetectorNode %q: YOLO inference needs a model adapter: schnitzel runs no Python and ships "+
			"no model weights (none can be downloaded here), so set config.command (e.g. [python3, scripts/adapters/yolo_adapter.py]) "+
			"or config.url to an adapter that loads %s; see docs/detector-adapter.md", y.run.node, y.cfg.ModelPath)
	}
	return y.run.start()
}

func (y *yoloNode) Close(ctx context.Context) error { return y.run.close(ctx) }

func (y *yoloNode) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	payload, idx, err := frameIdx(p)
	if err != nil {
		return err
	}
	_, dets, err := y.run.detect(ctx, p, payload, idx)
	if err != nil {
		return err
	}
	list := make([]any, 0, len(dets))
	for i := range dets {
		d := &dets[i]
		if d.Confidence < y.cfg.Conf {
			continue
		}
		cls := int64(-1)
		if d.ClassID != nil {
			cls = *d.ClassID
		}
		if len(y.cfg.classes) > 0 && !slices.Contains(y.cfg.classes, cls) {
			continue
		}
		if int64(len(list)) >= y.cfg.MaxDet {
			break
		}
		name := d.ClassName
		if name == "" {
			name = strconv.FormatInt(cls, 10)
		}
		r := func(v float64) int64 { return int64(math.RoundToEven(v)) } // Python round()
		list = append(list, packet.MapOf(
			"bbox", packet.MapOf("x1", r(d.BBox.X1), "y1", r(d.BBox.Y1), "x2", r(d.BBox.X2), "y2", r(d.BBox.Y2)),
			"confidence", d.Confidence,
			"class_id", cls,
			"class_name", name,
		))
	}
	next := payload.Clone(1)
	next.Set("detections", list)
	meta := p.Meta.Clone(2)
	meta.Set("detection_count", int64(len(list)))
	meta.Set("model", filepath.Base(y.cfg.ModelPath))
	if err := out.Emit(&packet.Packet{ID: packet.NewID(), TS: p.TS, Kind: "frame", SourceID: p.SourceID, Payload: next, Meta: meta}); err != nil {
		return err
	}
	y.emitted.Add(1)
	y.detected.Add(int64(len(list)))
	return nil
}

var (
	_ plugin.Starter   = (*yoloNode)(nil)
	_ plugin.Closer    = (*yoloNode)(nil)
	_ plugin.Processor = (*yoloNode)(nil)
)
