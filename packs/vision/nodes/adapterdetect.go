package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/goccy/go-yaml"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/detect"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/packs/vision/track"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// ClassMapEntry maps an adapter class (by id or name) to the protocol's
// event fields, as upstream's class_map YAML did.
type ClassMapEntry struct {
	ClassID    *int64 `yaml:"class_id" json:"class_id,omitempty" doc:"Adapter class id this entry matches."`
	Class      string `yaml:"class" json:"class,omitempty" doc:"Adapter class name this entry matches (case-insensitive), instead of or besides class_id."`
	EventType  string `yaml:"event_type" json:"event_type,omitempty" doc:"event_type of matching detections."`
	ObjectType string `yaml:"object_type" json:"object_type,omitempty" doc:"object_type of matching detections."`
	Severity   string `yaml:"severity" json:"severity,omitempty" doc:"severity of matching detections."`
}

// ModelAdapterConfig is ModelAdapterDetectorNode's config.
type ModelAdapterConfig struct {
	AdapterConfig `yaml:",inline"`
	Params        *packet.Map `yaml:"params" doc:"Passed verbatim to the adapter in every request header (params), e.g. a model path."`

	ConfidenceThreshold float64         `yaml:"confidence_threshold" doc:"Detections below this confidence are dropped (filtered_total)."`
	ClassMapPath        string          `yaml:"class_map_path" doc:"YAML file with a class_map list (upstream's configs/model_class_map.yaml format), read at start; replaces class_map."`
	ClassMap            []ClassMapEntry `yaml:"class_map" doc:"Maps adapter classes to event_type/object_type/severity; detections of an unmapped class without their own object_type are dropped (unmapped_total). Default: class 0 -> ZONE_INTRUSION/PERSON/LOW, as upstream."`
	EventType           string          `yaml:"event_type" doc:"event_type when neither the class map nor the adapter gives one."`
	Severity            string          `yaml:"severity" doc:"severity when neither the class map nor the adapter gives one."`

	Tracker       string  `yaml:"tracker" enum:"none,iou,bytetrack" doc:"Track ids across frames: none (the adapter's track_id, else a counter: every detection a new id, so dedup never drops a repeat), iou (upstream's IoU tracker, one per source_id: a box overlapping a track's last box by at least tracker_iou keeps that track's id), or bytetrack (not built in: the IoU tracker, as upstream without its library). With a tracker the adapter's own track_id is replaced."`
	TrackerIoU    float64 `yaml:"tracker_iou" doc:"IoU (0..1) a box needs with a track's last box to continue it (upstream TRACKER_IOU); a match needs some overlap even at 0."`
	TrackerMaxAge int64   `yaml:"tracker_max_age" doc:"Frames in a row a track may go unmatched before its id is retired (>= 1; upstream TRACKER_MAX_AGE)."`
}

// Validate checks the transport choice and numbers.
func (c *ModelAdapterConfig) Validate() error {
	if !(c.TrackerIoU >= 0 && c.TrackerIoU <= 1) {
		return plugin.Errorf("tracker_iou", "must be between 0 and 1, got %s", packet.PyFloat(c.TrackerIoU))
	}
	if c.TrackerMaxAge < 1 || c.TrackerMaxAge > math.MaxInt32 {
		return plugin.Errorf("tracker_max_age", "must be a number of frames >= 1, got %d", c.TrackerMaxAge)
	}
	return c.AdapterConfig.validate(true)
}

// AdapterConfig is the model-adapter part of both detector configs
// (ModelAdapterDetectorNode, YoloV8DetectorNode): how the adapter is reached
// and supervised. Its keys are inline: they sit beside the node's own.
type AdapterConfig struct {
	Command              []string       `yaml:"command" doc:"Adapter program and arguments, e.g. [python3, scripts/adapters/reference_adapter.py]; started at Start, one request per frame on its stdin (docs/detector-adapter.md). Exactly one of command and url."`
	URL                  string         `yaml:"url" secret:"true" doc:"HTTP adapter: each frame is POSTed here (image as body, request JSON in the X-Schnitzel-Request header)."`
	Env                  map[string]any `yaml:"env" secret:"true" doc:"Extra environment variables for the adapter process."`
	InputFormat          string         `yaml:"input_format" enum:"jpeg,bgr24" doc:"Image format sent to the adapter: jpeg, or bgr24 (raw pixels, width*height*3 bytes)."`
	JPEGQuality          int64          `yaml:"jpeg_quality" doc:"JPEG quality (1-100) for input_format jpeg."`
	TimeoutSec           plugin.Seconds `yaml:"timeout_sec" doc:"Per-frame deadline for the adapter's answer; a late frame is dropped and counted (timeouts_total)."`
	StartupTimeoutSec    plugin.Seconds `yaml:"startup_timeout_sec" doc:"Deadline for the first frame after each (re)start, while the adapter loads its model."`
	MaxRestarts          int64          `yaml:"max_restarts" doc:"Restarts in a row without a good answer before the run fails; 0: a crash ends the run; negative: no limit."`
	RestartBackoffSec    plugin.Seconds `yaml:"restart_backoff_sec" advanced:"true" doc:"Delay before the first restart; doubles per restart in a row."`
	RestartBackoffMaxSec plugin.Seconds `yaml:"restart_backoff_max_sec" advanced:"true" doc:"Upper bound of the restart delay."`
	MaxTimeouts          int64          `yaml:"max_consecutive_timeouts" advanced:"true" doc:"Timeouts in a row after which the adapter process counts as hung and is restarted."`
}

// adapterDefaults are both detectors' defaults.
var adapterDefaults = AdapterConfig{
	InputFormat: detect.FormatJPEG, JPEGQuality: 90, TimeoutSec: 5, StartupTimeoutSec: 60,
	MaxRestarts: 5, RestartBackoffSec: 0.5, RestartBackoffMaxSec: 10, MaxTimeouts: 3,
}

// validate checks the keys; need says whether command/url is mandatory
// (YOLO defers that to Start, so HEAD graphs validate without an adapter).
func (t AdapterConfig) validate(need bool) error {
	var errs []error // every problem at once
	switch {
	case len(t.Command) > 0 && strings.TrimSpace(t.URL) != "":
		errs = append(errs, plugin.Errorf("command", "set either command or url, not both"))
	case need && len(t.Command) == 0 && strings.TrimSpace(t.URL) == "":
		errs = append(errs, plugin.Errorf("command", "set command (the adapter program) or url (an HTTP adapter); see docs/detector-adapter.md"))
	case len(t.Command) > 0 && strings.TrimSpace(t.Command[0]) == "":
		errs = append(errs, plugin.Errorf("command[0]", "must name the adapter program"))
	case strings.TrimSpace(t.URL) != "" && !strings.HasPrefix(strings.TrimSpace(t.URL), "http://") && !strings.HasPrefix(strings.TrimSpace(t.URL), "https://"):
		errs = append(errs, plugin.Errorf("url", "must start with http:// or https://, got %q", redact.URL(strings.TrimSpace(t.URL))))
	}
	if t.TimeoutSec <= 0 {
		errs = append(errs, plugin.Errorf("timeout_sec", "must be > 0, got %s", packet.PyFloat(float64(t.TimeoutSec))))
	}
	if t.StartupTimeoutSec < 0 {
		errs = append(errs, plugin.Errorf("startup_timeout_sec", "must be >= 0"))
	}
	if t.JPEGQuality < 1 || t.JPEGQuality > 100 {
		errs = append(errs, plugin.Errorf("jpeg_quality", "must be between 1 and 100, got %d", t.JPEGQuality))
	}
	if t.RestartBackoffSec <= 0 || t.RestartBackoffMaxSec < t.RestartBackoffSec {
		errs = append(errs, plugin.Errorf("restart_backoff_sec", "must be > 0 and <= restart_backoff_max_sec"))
	}
	for _, k := range slices.Sorted(maps.Keys(t.Env)) {
		switch v := t.Env[k]; v.(type) {
		case string, int64, float64, bool:
		default:
			errs = append(errs, plugin.Errorf("env."+k, "must be a scalar, got %s", packet.PyStr(v)))
		}
	}
	return errors.Join(errs...)
}

// adapterClient is what a detector node needs from a transport.
type adapterClient interface {
	Start() error
	Detect(ctx context.Context, req *detect.Request, img []byte) ([]detect.Detection, error)
	Close(ctx context.Context) error
	Name() string
	Restarts() int64
}

// runner drives one adapter for a detector node: encoding, the request,
// and counting and reporting every failure (each drops only its packet).
type runner struct {
	class, node string
	env         plugin.Env
	t           AdapterConfig
	client      adapterClient
	params      json.RawMessage

	mu  sync.Mutex // serialises the encoder (Process may run concurrently)
	enc detect.Encoder

	// From the node's Counters (runnerMetrics). adapter_restarts_total is
	// the client's count, read by the node's Counters.
	requests, timeouts, garbage, crashes, adapterErrs *plugin.Counter
}

// newRunner takes runnerMetrics' counters from cs, the node's
// penv.Counters() (not a second call: outside the registry each call makes
// a new set). The node takes its own first (they are declared first), so
// that a lax Counters reports them in the same order.
func newRunner(class string, t AdapterConfig, params *packet.Map, penv plugin.Env, cs *plugin.Counters) *runner {
	r := &runner{class: class, node: penv.NodeID, env: penv, t: t, requests: cs.Get("requests_total")}
	cs.Read("adapter_restarts_total", r.restarts) // the transport counts its restarts
	r.timeouts, r.garbage = cs.Get("timeouts_total"), cs.Get("garbage_total")
	r.crashes, r.adapterErrs = cs.Get("adapter_crashes_total"), cs.Get("adapter_errors_total")
	if params != nil && params.Len() > 0 {
		r.params = packet.AppendJSON(nil, params, packet.Compact)
	}
	r.enc = detect.Encoder{Format: t.InputFormat, Quality: int(t.JPEGQuality)}
	url := strings.TrimSpace(t.URL)
	// The client is built here (cheap: nothing starts before Start) so that
	// Metrics, called from other goroutines, never sees it change.
	switch {
	case url != "":
		r.client = &detect.HTTP{URL: url, Timeout: t.TimeoutSec.Duration(), Client: &http.Client{}}
	case len(t.Command) > 0:
		env := make([]string, 0, len(t.Env))
		for k, v := range t.Env {
			s := packet.PyStr(v)
			if b, ok := v.(bool); ok {
				s = strconv.FormatBool(b) // "true", not Python's "True"
			}
			env = append(env, k+"="+s)
		}
		r.client = detect.NewProcess(detect.ProcessConfig{
			Command: t.Command, Env: env,
			Timeout: t.TimeoutSec.Duration(), StartupTimeout: t.StartupTimeoutSec.Duration(),
			MaxRestarts: int(t.MaxRestarts), BackoffMin: t.RestartBackoffSec.Duration(), BackoffMax: t.RestartBackoffMaxSec.Duration(),
			MaxTimeouts: int(t.MaxTimeouts), Logger: penv.Logger,
		})
	}
	return r
}

func (r *runner) start() error {
	if r.client == nil {
		return fmt.Errorf("%s %q: no adapter: set command or url", r.class, r.node)
	}
	if err := r.client.Start(); err != nil {
		return fmt.Errorf("%s %q: %w", r.class, r.node, err)
	}
	return nil
}

func (r *runner) close(ctx context.Context) error {
	if r.client == nil {
		return nil
	}
	return r.client.Close(ctx)
}

// detect sends the frame of a frame packet to the adapter. A nil error
// with nil detections means the adapter saw nothing.
func (r *runner) detect(ctx context.Context, p *packet.Packet, payload *packet.Map, idx int64) (*frame.Frame, []detect.Detection, error) {
	v, _ := payload.Get("frame")
	fr, ok := v.(*frame.Frame)
	if !ok || fr == nil {
		return nil, nil, plugin.DropPacket(fmt.Errorf("%s %q: payload.frame holds no decoded frame (got %s); feed it from a video source",
			r.class, r.node, packet.PyStr(v)))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	img, err := r.enc.Encode(fr)
	if err != nil {
		return nil, nil, plugin.DropPacket(fmt.Errorf("%s %q: frame %d: %w", r.class, r.node, idx, err))
	}
	req := detect.Request{Width: fr.Width, Height: fr.Height, Format: r.t.InputFormat, FrameIdx: idx,
		SourceID: p.SourceID, TS: p.TS, Params: r.params}
	r.requests.Add(1)
	dets, err := r.client.Detect(ctx, &req, img)
	if err == nil {
		return fr, dets, nil
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	err = fmt.Errorf("%s %q: frame %d: %w", r.class, r.node, idx, err)
	if errors.Is(err, detect.ErrGaveUp) {
		return nil, nil, err // ends the run: the adapter cannot be kept alive
	}
	switch detect.KindOf(err) {
	case detect.KindTimeout:
		r.timeouts.Add(1)
	case detect.KindGarbage:
		r.garbage.Add(1)
	case detect.KindCrashed:
		r.crashes.Add(1)
	default:
		r.adapterErrs.Add(1)
	}
	// The runtime logs dropped packets (rate-limited) with this message.
	return nil, nil, plugin.DropPacket(err)
}

// runnerMetrics declares the runner's metrics (newRunner takes them, and
// reads adapter_restarts_total from the client), for the specs of the
// detectors that talk to an adapter, after their own.
var runnerMetrics = []plugin.MetricSpec{
	{Name: "requests_total", Help: "Frames sent to the adapter."},
	{Name: "adapter_restarts_total", Help: "Adapter processes restarted after a crash or a hang."},
	{Name: "timeouts_total", Help: "Frames the adapter did not answer within timeout_sec: dropped.", Loss: true},
	{Name: "garbage_total", Help: "Frames whose answer could not be parsed: dropped.", Loss: true},
	{Name: "adapter_crashes_total", Help: "Frames lost to an adapter crash: dropped.", Loss: true},
	{Name: "adapter_errors_total", Help: "Frames the adapter answered with an error (or an HTTP failure): dropped.", Loss: true},
}

// restarts is adapter_restarts_total, read from the client (0 without one).
func (r *runner) restarts() int64 {
	if r.client == nil {
		return 0
	}
	return r.client.Restarts()
}

const adapterDoc = "The adapter protocol (docs/detector-adapter.md): per frame one JSON header line {id, width, height, " +
	"format, bytes, frame_idx, source_id, ts, params} then `bytes` raw image bytes on the adapter's stdin; one JSON " +
	"line {id, detections: [{bbox: {x1,y1,x2,y2}, confidence, class_id?, class_name?, object_type?, event_type?, " +
	"severity?, track_id?}]} or {id, error} back on its stdout. With url, the image is POSTed and the header travels " +
	"in X-Schnitzel-Request. A timeout, a crash, garbage output or an adapter error drops only that frame " +
	"(plugin.DropPacket: counted, run degraded) and is logged with the node id and the adapter's command or URL; " +
	"a crashed or hung process restarts on the next frame after a doubling backoff (adapter_restarts_total); " +
	"max_restarts restarts in a row without a good answer end the run."

func registerModelAdapter(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[ModelAdapterConfig]{
		Name: headPack + "ModelAdapterDetectorNode",
		Role: plugin.RoleNode, In: []string{"frame"}, Out: []string{"detection"},
		Stability: plugin.Beta,
		Summary:   "Detect objects with an external model adapter (a child process or an HTTP server); one detection packet per object.",
		Description: "Emits the packets MockDetectorNode emits, so ProtocolV02EventBuilderNode, zones and dedup work " +
			"unchanged: kind detection, the frame's source_id and ts, meta = the frame's plus frame_idx and meta.frame " +
			"(for EventSnapshotNode; writers of packets leave it out), payload bbox (clipped to the frame, truncated to integers; empty boxes dropped), " +
			"confidence, event_type, object_type, severity, track_id. Fields come from class_map (by class_id or class " +
			"name), else from the adapter's own object_type/event_type/severity, else event_type/severity of the config; " +
			"track_id: with tracker none the adapter's, else a counter 0,1,2,... per node (upstream's adapters without " +
			"tracker); with tracker iou (or bytetrack, which is iou here) upstream's IoU tracker, one per source_id, " +
			"assigns every id: each track in creation order takes the unmatched box of highest IoU (> 0 and >= " +
			"tracker_iou), other boxes start new tracks (ids 0,1,2,... per source_id), tracks unmatched for more than " +
			"tracker_max_age answered frames are retired. " +
			adapterDoc,
		Defaults: DefaultModelAdapterConfig(),
		Metrics: append([]plugin.MetricSpec{
			{Name: "emitted_total", Help: "Detection packets emitted."},
			{Name: "filtered_total", Help: "Detections dropped below confidence_threshold or with an empty box once clipped to the frame."},
			{Name: "unmapped_total", Help: "Detections dropped: a class class_map does not map and without an object_type of their own."},
		}, runnerMetrics...),
		NewProcessor: newModelAdapter,
	})
	registerYolo(r)
	registerDisplay(r)
}

// DefaultModelAdapterConfig returns ModelAdapterDetectorNode's defaults.
func DefaultModelAdapterConfig() ModelAdapterConfig {
	return ModelAdapterConfig{
		AdapterConfig: adapterDefaults,
		ClassMap:      []ClassMapEntry{{ClassID: ptr(int64(0)), EventType: "ZONE_INTRUSION", ObjectType: "PERSON", Severity: "LOW"}},
		EventType:     "ZONE_INTRUSION", Severity: "LOW",
		Tracker: "none", TrackerIoU: track.Defaults.IoU, TrackerMaxAge: int64(track.Defaults.MaxAge),
	}
}

// NewModelAdapter builds a ModelAdapterDetectorNode from a typed config,
// for Go callers without a graph file (the legacy job): start from
// DefaultModelAdapterConfig; c is checked as a graph's config would be.
func NewModelAdapter(c ModelAdapterConfig, env plugin.Env) (plugin.Processor, error) {
	if err := plugin.CheckConfig(&c); err != nil {
		return nil, err
	}
	return newModelAdapter(c, env)
}

func newModelAdapter(c ModelAdapterConfig, env plugin.Env) (plugin.Processor, error) {
	cs := env.Counters()
	d := &adapterDetector{Counters: cs, cfg: c,
		emitted: cs.Get("emitted_total"), filtered: cs.Get("filtered_total"), unmapped: cs.Get("unmapped_total")}
	d.run = newRunner("ModelAdapterDetectorNode", c.AdapterConfig, c.Params, env, cs) // after the node's own: declaration order
	return d, nil
}

func ptr[T any](v T) *T { return &v }

type adapterDetector struct {
	*plugin.Counters            // reports them; adapter_restarts_total is read from the client
	cfg                         ModelAdapterConfig
	run                         *runner
	track                       atomic.Int64
	emitted, filtered, unmapped *plugin.Counter

	tmu      sync.Mutex            // guards trackers
	trackers map[string]*track.IoU // one per source_id (camera)
}

func (d *adapterDetector) Start(context.Context) error {
	if p := strings.TrimSpace(d.cfg.ClassMapPath); p != "" {
		m, err := loadClassMap(p)
		if err != nil {
			return fmt.Errorf("ModelAdapterDetectorNode %q: class_map_path: %w", d.run.node, err)
		}
		d.cfg.ClassMap = m
	}
	if d.cfg.Tracker == "bytetrack" {
		d.run.env.Logger.Warn("ByteTrack is not built in; tracker bytetrack uses the IoU tracker", "node", d.run.node)
	}
	return d.run.start()
}

// loadClassMap reads upstream's class map file: {class_map: [{class_id,
// event_type, object_type, severity}]}. Unlike upstream, a file that is
// missing, malformed or empty is an error, not a silent fallback.
func loadClassMap(path string) ([]ClassMapEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		ClassMap []ClassMapEntry `yaml:"class_map"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(doc.ClassMap) == 0 {
		return nil, fmt.Errorf("%s: no class_map entries", path)
	}
	for i, e := range doc.ClassMap {
		if e.ClassID == nil && e.Class == "" {
			return nil, fmt.Errorf("%s: class_map[%d]: needs class_id or class", path, i)
		}
	}
	return doc.ClassMap, nil
}

func (d *adapterDetector) Close(ctx context.Context) error { return d.run.close(ctx) }

func (d *adapterDetector) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	payload, idx, err := frameIdx(p)
	if err != nil {
		return err
	}
	fr, dets, err := d.run.detect(ctx, p, payload, idx)
	if err != nil {
		return err
	}
	ts := p.TS
	if ts == "" {
		ts = packet.Now()
	}
	tracked := d.cfg.Tracker != "none" && d.cfg.Tracker != ""
	payloads := make([]*packet.Map, 0, len(dets))
	var boxes []track.Det
	for i := range dets {
		if det, td := d.toPayload(&dets[i], fr, !tracked); det != nil {
			payloads = append(payloads, det)
			if tracked {
				boxes = append(boxes, td)
			}
		}
	}
	if tracked {
		// Every answered frame, also one without boxes, so tracks age.
		d.assignTracks(p.SourceID, boxes)
		for i, det := range payloads {
			det.Set("track_id", boxes[i].TrackID) // every detection has a box, so an id
		}
	}
	for _, det := range payloads {
		meta := p.Meta.Clone(2)
		meta.Set("frame_idx", idx)
		meta.Set(FrameMetaKey, fr)
		if err := out.Emit(&packet.Packet{ID: packet.NewID(), TS: ts, Kind: "detection", SourceID: p.SourceID, Payload: det, Meta: meta}); err != nil {
			return err
		}
		d.emitted.Add(1)
	}
	return nil
}

// toPayload builds the detection payload, or nil (counted) when the
// detection is filtered out, and what a tracker needs of it. Without
// withTrack the payload has no track_id yet (the tracker adds it).
func (d *adapterDetector) toPayload(det *detect.Detection, fr *frame.Frame, withTrack bool) (*packet.Map, track.Det) {
	if det.Confidence < d.cfg.ConfidenceThreshold {
		d.filtered.Add(1)
		return nil, track.Det{}
	}
	x1, y1, x2, y2, ok := clipBox(det.BBox, fr.Width, fr.Height)
	if !ok {
		d.filtered.Add(1)
		return nil, track.Det{}
	}
	eventType, objectType, severity := det.EventType, det.ObjectType, det.Severity
	if e := d.lookup(det); e != nil {
		eventType, objectType, severity = or(e.EventType, eventType), or(e.ObjectType, objectType), or(e.Severity, severity)
	} else if objectType == "" {
		d.unmapped.Add(1)
		return nil, track.Det{}
	}
	m := packet.MapOf(
		"bbox", packet.MapOf("x1", x1, "y1", y1, "x2", x2, "y2", y2),
		"confidence", det.Confidence,
		"event_type", or(eventType, d.cfg.EventType),
		"object_type", objectType,
		"severity", or(severity, d.cfg.Severity),
	)
	if withTrack {
		var id int64
		if det.TrackID != nil {
			id = *det.TrackID
		} else {
			id = d.track.Add(1) - 1
		}
		m.Set("track_id", id)
	}
	return m, track.Det{Box: track.Box{X1: float64(x1), Y1: float64(y1), X2: float64(x2), Y2: float64(y2)}, ObjectType: objectType}
}

// assignTracks runs the source's tracker over one frame's boxes (in the
// order the adapter sent them) and sets their TrackID.
func (d *adapterDetector) assignTracks(source string, dets []track.Det) {
	d.tmu.Lock()
	defer d.tmu.Unlock()
	tr := d.trackers[source]
	if tr == nil {
		if d.trackers == nil {
			d.trackers = map[string]*track.IoU{}
		}
		tr = track.New(track.Config{IoU: d.cfg.TrackerIoU, MaxAge: int(d.cfg.TrackerMaxAge)})
		d.trackers[source] = tr
	}
	tr.Update(dets)
}

func (d *adapterDetector) lookup(det *detect.Detection) *ClassMapEntry {
	for i := range d.cfg.ClassMap {
		e := &d.cfg.ClassMap[i]
		if e.ClassID != nil && det.ClassID != nil && *e.ClassID == *det.ClassID {
			return e
		}
		if e.Class != "" && strings.EqualFold(e.Class, det.ClassName) {
			return e
		}
	}
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// clipBox clips b to the frame and truncates to integers (upstream's ONNX
// adapter did both); an empty result is not a box.
func clipBox(b detect.BBox, w, h int) (x1, y1, x2, y2 int64, ok bool) {
	c := func(v float64, hi int) int64 { return int64(math.Trunc(math.Max(0, math.Min(v, float64(hi))))) }
	x1, y1, x2, y2 = c(b.X1, w), c(b.Y1, h), c(b.X2, w), c(b.Y2, h)
	return x1, y1, x2, y2, x2 > x1 && y2 > y1
}

var (
	_ plugin.Starter   = (*adapterDetector)(nil)
	_ plugin.Closer    = (*adapterDetector)(nil)
	_ plugin.Processor = (*adapterDetector)(nil)
	_ plugin.Metrics   = (*adapterDetector)(nil)
)
