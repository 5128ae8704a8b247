package nodes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	ionodes "github.com/schnitzel-stream/schnitzel/nodes/io"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/detect/adaptertest"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/packs/vision/nodes"
	"github.com/schnitzel-stream/schnitzel/packs/vision/video"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// TestMain lets this test binary act as the model adapter (helper-process
// pattern): the detector nodes under test run os.Args[0] with
// SCHNITZEL_TEST_ADAPTER set, so no Python is needed.
func TestMain(m *testing.M) {
	adaptertest.Main()
	os.Exit(m.Run())
}

const (
	adapterN = "schnitzel_stream.packs.vision.nodes:ModelAdapterDetectorNode"
	yoloN    = "schnitzel_stream.packs.vision.nodes:YoloV8DetectorNode"
	displayN = "schnitzel_stream.packs.vision.nodes:OpenCvBboxDisplaySink"
)

// helperCommand is the YAML flow list that runs this binary as the adapter.
func helperCommand() string {
	return fmt.Sprintf("[%q, \"-test.run=^$\"]", os.Args[0])
}

func needFFmpeg(t *testing.T) {
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not in PATH: install ffmpeg to run this test", b)
		}
	}
}

// redBoxClip writes a 160x120 black clip with a filled red box at
// (40,30)-(72,54): the adapter must find it in every decoded frame.
func redBoxClip(t *testing.T, dir string) string {
	return lavfiClip(t, dir, "box.mp4", "color=c=black:s=160x120:r=24:d=1,drawbox=x=40:y=30:w=32:h=24:color=red:t=fill")
}

// lavfiClip encodes an ffmpeg lavfi source (yuv420p H.264) to dir/name.
func lavfiClip(t *testing.T, dir, name, lavfi string) string {
	t.Helper()
	mp4 := filepath.Join(dir, name)
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
		"-i", lavfi, "-pix_fmt", "yuv420p", mp4).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return mp4
}

type runReport struct {
	Status  string           `json:"status"`
	Metrics map[string]int64 `json:"metrics"`
}

// runGraph runs graph text through engine.Run (the CLI's load, validate
// and run path) and returns the lines the print sink wrote (prefix "EV ")
// and the report. opts adjust the run (the CLI's --inbox-max-bytes and
// such).
func runGraph(t *testing.T, dir, g string, opts ...func(*engine.Options)) ([]string, runReport) {
	t.Helper()
	gf := filepath.Join(dir, "g.yaml")
	if err := os.WriteFile(gf, []byte(g), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := registry()
	video.Register(reg)
	ionodes.Register(reg)
	durable.Register(reg)
	var stdout bytes.Buffer
	o := engine.Options{Registry: reg, Stdout: &stdout, Getenv: func(string) string { return "" },
		LookupEnv: func(string) (string, bool) { return "", false }}
	for _, f := range opts {
		f(&o)
	}
	r, err := engine.Run(context.Background(), gf, o)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	var rep runReport
	if err := json.Unmarshal(r.JSON(), &rep); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if s, ok := strings.CutPrefix(l, "EV "); ok {
			lines = append(lines, s)
		} else if l != "" {
			t.Fatalf("line %q is not the print sink's", l)
		}
	}
	return lines, rep
}

// TestModelAdapterVideoToEvents decodes a real clip with the ffmpeg source
// and finds the red box through the adapter process, in both image
// formats, then builds, zones and dedups the events; a garbage answer or
// a crash costs exactly the frame concerned (the adapter restarts) and
// marks the run degraded.
func TestModelAdapterVideoToEvents(t *testing.T) {
	needFFmpeg(t)
	cases := []struct {
		name, format, mode string
		events             int
		status             string
		garbage, restarts  int64
	}{
		{"jpeg", "jpeg", "red", 12, "ok", 0, 0},
		{"bgr24", "bgr24", "red", 12, "ok", 0, 0},
		{"garbage frame dropped", "jpeg", "red,garbage-on=3", 11, "degraded", 1, 0},
		{"crashed adapter restarted", "bgr24", "red,crash-after=6", 11, "degraded", 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			mp4 := redBoxClip(t, dir)
			g := `version: 2
nodes:
  - {id: video, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource,
     config: {path: "` + mp4 + `", source_id: cam01, max_frames: 12, start_ts: "2026-02-14T00:00:00Z"}}
  - {id: det, kind: node, plugin: ` + adapterN + `,
     config: {command: ` + helperCommand() + `, env: {` + adaptertest.EnvMode + `: "` + c.mode + `"},
              input_format: ` + c.format + `, restart_backoff_sec: 0.01, class_map: [{class: red, event_type: INTRUSION, object_type: PERSON, severity: HIGH}]}}
  - {id: events, kind: node, plugin: schnitzel_stream.packs.vision.nodes:ProtocolV02EventBuilderNode, config: {site_id: S001}}
  - {id: zones, kind: node, plugin: schnitzel_stream.packs.vision.nodes:ZonePolicyNode,
     config: {zones: [{zone_id: Z1, enabled: true, polygon: [[0,0],[100,0],[100,100],[0,100]]}]}}
  - {id: dedup, kind: node, plugin: schnitzel_stream.packs.vision.nodes:DedupPolicyNode, config: {cooldown_sec: 3600}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefix: "EV "}}
edges:
  - {from: video, to: det}
  - {from: det, to: events}
  - {from: events, to: zones}
  - {from: zones, to: dedup}
  - {from: dedup, to: out}
`
			events, rep := runGraph(t, dir, g)
			if len(events) != c.events || rep.Status != c.status {
				t.Fatalf("%d events, status %s; want %d, %s", len(events), rep.Status, c.events, c.status)
			}
			for k, v := range map[string]int64{"node.det.requests_total": 12, "node.det.emitted_total": int64(c.events),
				"node.det.garbage_total": c.garbage, "node.det.adapter_restarts_total": c.restarts, "node.events.emitted_total": int64(c.events)} {
				if rep.Metrics[k] != v {
					t.Errorf("%s = %d, want %d", k, rep.Metrics[k], v)
				}
			}
			var ev struct {
				Payload struct {
					EventType string             `json:"event_type"`
					Severity  string             `json:"severity"`
					BBox      map[string]float64 `json:"bbox"`
					Zone      map[string]any     `json:"zone"`
				} `json:"payload"`
			}
			if err := json.Unmarshal([]byte(events[0]), &ev); err != nil {
				t.Fatal(err)
			}
			want := map[string]float64{"x1": 40, "y1": 30, "x2": 72, "y2": 54}
			for k, v := range want {
				// yuv420p and JPEG blur the box edge by a pixel or two.
				if math.Abs(ev.Payload.BBox[k]-v) > 2 {
					t.Errorf("bbox %v, want about %v", ev.Payload.BBox, want)
					break
				}
			}
			if ev.Payload.EventType != "INTRUSION" || ev.Payload.Severity != "HIGH" || ev.Payload.Zone["zone_id"] != "Z1" {
				t.Errorf("event %s", events[0])
			}
		})
	}
}

func framePacket(idx int64, w, h int) *packet.Packet {
	f := frame.New(w, h)
	f.Index = idx
	return packet.New("frame", "cam01", packet.MapOf("frame", f, "frame_idx", idx), "2026-02-14T00:00:00+00:00",
		packet.MapOf("frame_idx", idx))
}

func buildAdapter(t *testing.T, name string, cfg *packet.Map) any {
	t.Helper()
	r := plugin.NewRegistry()
	nodes.Register(r)
	n := plugintest.Build(t, r, name, "node", cfg)
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n
}

func helperCfg(mode string, kv ...any) *packet.Map {
	m := packet.MapOf("command", []any{os.Args[0], "-test.run=^$"}, "env", packet.MapOf(adaptertest.EnvMode, mode),
		"restart_backoff_sec", 0.001, "restart_backoff_max_sec", 0.004)
	for i := 0; i+1 < len(kv); i += 2 {
		m.Set(kv[i].(string), kv[i+1])
	}
	return m
}

// process runs frames 0..n-1 through node and returns, per frame, the
// emitted packets and the error.
func process(t *testing.T, n any, frames int) ([][]*packet.Packet, []error) {
	t.Helper()
	var outs [][]*packet.Packet
	var errs []error
	for i := range int64(frames) {
		col := &plugintest.Collector{}
		err := n.(plugin.Processor).Process(context.Background(), framePacket(i, 64, 48), col)
		outs = append(outs, col.Packets())
		errs = append(errs, err)
	}
	return outs, errs
}

func TestModelAdapterFailures(t *testing.T) {
	cases := []struct {
		name      string
		cfg       *packet.Map
		frames    int
		failed    []int64 // frames whose packet is dropped
		metrics   map[string]int64
		errSubstr string
	}{
		{"crash restarts", helperCfg("fixed,crash-after=2"), 5, []int64{2},
			map[string]int64{"adapter_restarts_total": 1, "adapter_crashes_total": 1, "emitted_total": 4, "requests_total": 5},
			"boom (crash-after)"},
		{"garbage counted", helperCfg("fixed,garbage-on=1"), 3, []int64{1},
			map[string]int64{"garbage_total": 1, "emitted_total": 2, "adapter_restarts_total": 0}, `"this is not json"`},
		{"adapter error counted", helperCfg("fixed,error-on=0"), 2, []int64{0},
			map[string]int64{"adapter_errors_total": 1, "emitted_total": 1}, "model exploded"},
		{"timeout counted", helperCfg("fixed,slow-on=1", "timeout_sec", 0.3, "startup_timeout_sec", int64(10)), 2, []int64{1},
			map[string]int64{"timeouts_total": 1, "emitted_total": 1, "adapter_restarts_total": 0}, "no answer within 300ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := buildAdapter(t, adapterN, c.cfg)
			outs, errs := process(t, n, c.frames)
			for i, err := range errs {
				dropped := false
				for _, f := range c.failed {
					dropped = dropped || int64(i) == f
				}
				if !dropped {
					if err != nil || len(outs[i]) != 1 {
						t.Fatalf("frame %d: %d packets, err %v", i, len(outs[i]), err)
					}
					continue
				}
				var pe *plugin.PacketError
				if !errors.As(err, &pe) {
					t.Fatalf("frame %d: err %v, want a dropped packet", i, err)
				}
				for _, s := range []string{`ModelAdapterDetectorNode "`, "adapter [" + os.Args[0], c.errSubstr} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
			}
			got := metrics(n)
			for k, v := range c.metrics {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
			r := plugin.NewRegistry()
			nodes.Register(r)
			if plugintest.Lost(t, r, adapterN, n) == 0 {
				t.Error("no Loss metric is non-zero: the run would not report degraded")
			}
		})
	}
}

func TestModelAdapterGivesUp(t *testing.T) {
	n := buildAdapter(t, adapterN, helperCfg("crash-after=0", "max_restarts", int64(1)))
	_, errs := process(t, n, 3)
	var pe *plugin.PacketError
	if !errors.As(errs[0], &pe) || !errors.As(errs[1], &pe) {
		t.Fatalf("first crashes should drop the packet: %v", errs[:2])
	}
	if errs[2] == nil || errors.As(errs[2], &pe) || !strings.Contains(errs[2].Error(), "max_restarts 1") {
		t.Fatalf("third frame: %v, want a run-ending error", errs[2])
	}
}

// jsonAdapter is an HTTP adapter answering with fixed detections and
// keeping the request headers it saw.
type jsonAdapter struct {
	answer  string
	mu      sync.Mutex
	headers []string
}

func (a *jsonAdapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	a.mu.Lock()
	a.headers = append(a.headers, r.Header.Get("X-Schnitzel-Request"))
	a.mu.Unlock()
	_, _ = io.WriteString(w, a.answer)
}

func TestModelAdapterMapping(t *testing.T) {
	a := &jsonAdapter{answer: `{"detections": [
	  {"class_id": 0, "confidence": 0.9, "bbox": {"x1": -5, "y1": 2.7, "x2": 30.9, "y2": 100}},
	  {"class_id": 2, "class_name": "car", "confidence": 0.8, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}, "track_id": 42},
	  {"class_id": 7, "confidence": 0.9, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
	  {"object_type": "FIRE", "event_type": "HAZARD_ALERT", "confidence": 0.7, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
	  {"class_id": 0, "confidence": 0.1, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
	  {"class_id": 0, "confidence": 0.9, "bbox": {"x1": 70, "y1": 1, "x2": 80, "y2": 5}}
	]}`}
	srv := httptest.NewServer(a)
	defer srv.Close()
	n := buildAdapter(t, adapterN, packet.MapOf("url", srv.URL, "confidence_threshold", 0.5, "params", packet.MapOf("model", "m.onnx"),
		"class_map", []any{
			packet.MapOf("class_id", int64(0), "event_type", "ZONE_INTRUSION", "object_type", "PERSON", "severity", "LOW"),
			packet.MapOf("class", "CAR", "object_type", "VEHICLE", "severity", "MEDIUM"),
		}))
	outs, errs := process(t, n, 2)
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	var got []string
	for _, p := range outs[0] {
		got = append(got, string(packet.AppendJSON(nil, p.Payload, packet.Compact)))
		if p.Kind != "detection" || p.SourceID != "cam01" || p.TS != "2026-02-14T00:00:00+00:00" {
			t.Errorf("packet %s %s %s", p.Kind, p.SourceID, p.TS)
		}
		if f, _ := p.Meta.Get("frame"); f == nil {
			t.Error("meta.frame missing (EventSnapshotNode needs it)")
		}
	}
	want := []string{
		`{"bbox":{"x1":0,"y1":2,"x2":30,"y2":48},"confidence":0.9,"event_type":"ZONE_INTRUSION","object_type":"PERSON","severity":"LOW","track_id":0}`,
		`{"bbox":{"x1":1,"y1":1,"x2":5,"y2":5},"confidence":0.8,"event_type":"ZONE_INTRUSION","object_type":"VEHICLE","severity":"MEDIUM","track_id":42}`,
		`{"bbox":{"x1":1,"y1":1,"x2":5,"y2":5},"confidence":0.7,"event_type":"HAZARD_ALERT","object_type":"FIRE","severity":"LOW","track_id":1}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("payloads\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	m := metrics(n)
	// per frame: class 7 unmapped; low confidence and the box outside the frame filtered
	if m["emitted_total"] != 6 || m["unmapped_total"] != 2 || m["filtered_total"] != 4 {
		t.Fatalf("metrics %v", m)
	}
	var hdr map[string]any
	if err := json.Unmarshal([]byte(a.headers[1]), &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["width"] != 64.0 || hdr["height"] != 48.0 || hdr["format"] != "jpeg" || hdr["frame_idx"] != 1.0 ||
		hdr["source_id"] != "cam01" || hdr["params"].(map[string]any)["model"] != "m.onnx" {
		t.Fatalf("request header %s", a.headers[1])
	}
}

func TestModelAdapterConfigErrors(t *testing.T) {
	cases := []struct {
		cfg  *packet.Map
		want string
	}{
		{packet.NewMap(0), "config.command: set command"},
		{packet.MapOf("command", []any{"x"}, "url", "http://127.0.0.1:1"), "either command or url"},
		{packet.MapOf("url", "ftp://x"), "must start with http://"},
		{packet.MapOf("command", []any{"x"}, "timeout_sec", 0.0), "timeout_sec: must be > 0"},
		{packet.MapOf("command", []any{"x"}, "input_format", "png"), "must be one of jpeg, bgr24"},
		{packet.MapOf("command", []any{"x"}, "jpeg_quality", int64(0)), "jpeg_quality"},
		{packet.MapOf("command", []any{"x"}, "tracker", "sort"), "config.tracker: must be one of none, iou, bytetrack"},
		{packet.MapOf("command", []any{"x"}, "tracker", "iou", "tracker_iou", 1.5), "config.tracker_iou: must be between 0 and 1"},
		{packet.MapOf("command", []any{"x"}, "tracker_iou", math.NaN()), "config.tracker_iou"},
		{packet.MapOf("command", []any{"x"}, "tracker", "iou", "tracker_max_age", int64(0)), "config.tracker_max_age: must be a number of frames >= 1"},
	}
	for _, c := range cases {
		if err := buildErr(adapterN, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", packet.PyStr(c.cfg), err, c.want)
		}
	}
	// A program that does not exist fails at Start, naming it.
	r := plugin.NewRegistry()
	nodes.Register(r)
	n := plugintest.Build(t, r, adapterN, "node", packet.MapOf("command", []any{"/nonexistent/adapter.py"}))
	err := n.(plugin.Starter).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/adapter.py") || !strings.Contains(err.Error(), "ModelAdapterDetectorNode") {
		t.Fatalf("start: %v", err)
	}
	_ = n.(plugin.Closer).Close(context.Background())
}

func TestYoloNeedsAdapter(t *testing.T) {
	// HEAD's config as its graphs write it, without command or url: the
	// node could only fail at start, so validation rejects it.
	err := buildErr(yoloN, packet.MapOf("model_path", "models/yolov8n.pt", "conf", "0.35",
		"iou", "0.45", "max_det", "100", "device", "cpu"))
	if err == nil || !strings.Contains(err.Error(), "docs/detector-adapter.md") || !strings.Contains(err.Error(), "needs a model adapter") || !strings.Contains(err.Error(), "command") {
		t.Fatalf("validation without adapter: %v", err)
	}
	if err := buildErr(yoloN, packet.MapOf("url", "http://127.0.0.1:1/", "classes", "0,x")); err == nil || !strings.Contains(err.Error(), "classes") {
		t.Fatalf("bad classes: %v", err)
	}
}

func TestYoloThroughAdapter(t *testing.T) {
	a := &jsonAdapter{answer: `{"detections": [
	  {"class_id": 0, "class_name": "person", "confidence": 0.9, "bbox": {"x1": 1.5, "y1": 2.5, "x2": 30.4, "y2": 40.6}},
	  {"class_id": 2, "class_name": "car", "confidence": 0.95, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
	  {"class_id": 0, "confidence": 0.2, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
	  {"class_id": 0, "confidence": 0.8, "bbox": {"x1": 3, "y1": 3, "x2": 9, "y2": 9}}
	]}`}
	srv := httptest.NewServer(a)
	defer srv.Close()
	n := buildAdapter(t, yoloN, packet.MapOf("url", srv.URL, "model_path", "models/best.pt", "conf", 0.35,
		"classes", []any{int64(0)}, "max_det", int64(1), "device", "cpu"))
	outs, errs := process(t, n, 1)
	if errs[0] != nil || len(outs[0]) != 1 {
		t.Fatalf("%v %v", outs, errs)
	}
	p := outs[0][0]
	dets, _ := p.Payload.(*packet.Map).Get("detections")
	if got := string(packet.AppendJSON(nil, dets, packet.Compact)); got != `[{"bbox":{"x1":2,"y1":2,"x2":30,"y2":41},"confidence":0.9,"class_id":0,"class_name":"person"}]` {
		t.Fatalf("detections %s", got)
	}
	if p.Kind != "frame" || packet.PyStr(mustMeta(p, "detection_count")) != "1" || mustMeta(p, "model") != "best.pt" {
		t.Fatalf("packet %s meta %s", p.Kind, packet.AppendJSON(nil, p.Meta, packet.Compact))
	}
	var hdr struct {
		Params map[string]any `json:"params"`
	}
	if err := json.Unmarshal([]byte(a.headers[0]), &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Params["model_path"] != "models/best.pt" || hdr.Params["conf"] != 0.35 || hdr.Params["iou"] != 0.45 ||
		hdr.Params["max_det"] != 1.0 || hdr.Params["device"] != "cpu" || fmt.Sprint(hdr.Params["classes"]) != "[0]" {
		t.Fatalf("params %v", hdr.Params)
	}
	if m := metrics(n); m["emitted_total"] != 1 || m["detected_total"] != 1 {
		t.Fatalf("metrics %v", m)
	}
}

func mustMeta(p *packet.Packet, k string) any {
	v, _ := p.Meta.Get(k)
	return v
}

func TestDisplaySink(t *testing.T) {
	dets := []any{packet.MapOf("bbox", packet.MapOf("x1", int64(10), "y1", int64(10), "x2", int64(40), "y2", int64(30)),
		"confidence", 0.9, "class_id", int64(0), "class_name", "person")}
	pkt := func(idx int64) *packet.Packet {
		p := framePacket(idx, 64, 48)
		p.Payload.(*packet.Map).Set("detections", dets)
		return p
	}
	t.Run("output_dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "display")
		n := buildAdapter(t, displayN, packet.MapOf("output_dir", dir, "color_bgr", []any{int64(0), int64(0), int64(255)},
			"window_name", "x", "wait_key_ms", int64(1), "show_stats", true, "stop_on_quit_key", true, "font_scale", 0.6))
		for i := range int64(3) {
			if err := n.(plugin.Processor).Process(context.Background(), pkt(i), &plugintest.Collector{}); err != nil {
				t.Fatal(err)
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "cam01.jpg" {
			t.Fatalf("files %v, want only cam01.jpg", entries)
		}
		f, err := os.Open(filepath.Join(dir, "cam01.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := jpeg.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		edge := func(x, y int) (uint32, uint32) { r, g, _, _ := img.At(x, y).RGBA(); return r >> 8, g >> 8 }
		if r, g := edge(25, 10); r < 150 || g > 100 {
			t.Errorf("top edge (%d,%d), want red", r, g)
		}
		if r, _ := edge(25, 20); r > 60 {
			t.Errorf("box inside is %d red, want black", r)
		}
		if m := metrics(n); m["shown_total"] != 3 {
			t.Fatalf("metrics %v", m)
		}
	})
	t.Run("keep_frames", func(t *testing.T) {
		dir := t.TempDir()
		n := buildAdapter(t, displayN, packet.MapOf("output_dir", dir, "keep_frames", true, "forward", true))
		col := &plugintest.Collector{}
		for i := range int64(2) {
			if err := n.(plugin.Processor).Process(context.Background(), pkt(i), col); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"cam01_00000000.jpg", "cam01_00000001.jpg"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Error(err)
			}
		}
		if len(col.Packets()) != 2 {
			t.Fatalf("forward: %d packets", len(col.Packets()))
		}
	})
	t.Run("headless", func(t *testing.T) {
		n := buildAdapter(t, displayN, packet.NewMap(0))
		col := &plugintest.Collector{}
		for i := range int64(2) {
			if err := n.(plugin.Processor).Process(context.Background(), pkt(i), col); err != nil {
				t.Fatal(err)
			}
		}
		if m := metrics(n); m["not_shown_total"] != 2 || m["shown_total"] != 0 || len(col.Packets()) != 0 {
			t.Fatalf("metrics %v, %d forwarded", m, len(col.Packets()))
		}
		err := n.(plugin.Processor).Process(context.Background(), packet.New("frame", "c", packet.MapOf("frame_idx", int64(1)), "", nil), col)
		var pe *plugin.PacketError
		if !errors.As(err, &pe) {
			t.Fatalf("frame without pixels: %v", err)
		}
	})
}

// TestReferenceAdapterScript runs scripts/adapters/reference_adapter.py
// (the documented example) on the red-box clip; skipped without python3.
func TestReferenceAdapterScript(t *testing.T) {
	needFFmpeg(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not in PATH")
	}
	script, err := filepath.Abs("../../../scripts/adapters/reference_adapter.py")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mp4 := redBoxClip(t, dir)
	g := `version: 2
nodes:
  - {id: video, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource,
     config: {path: "` + mp4 + `", source_id: cam01, max_frames: 4}}
  - {id: det, kind: node, plugin: ` + adapterN + `,
     config: {command: ["` + py + `", "` + script + `", "--step", "2"], input_format: bgr24}}
  - {id: events, kind: node, plugin: schnitzel_stream.packs.vision.nodes:ProtocolV02EventBuilderNode, config: {site_id: S001}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefix: "EV "}}
edges:
  - {from: video, to: det}
  - {from: det, to: events}
  - {from: events, to: out}
`
	events, rep := runGraph(t, dir, g)
	if len(events) != 4 || rep.Status != "ok" {
		t.Fatalf("%d events, status %s", len(events), rep.Status)
	}
	var ev struct {
		Payload struct {
			ObjectType string             `json:"object_type"`
			BBox       map[string]float64 `json:"bbox"`
		} `json:"payload"`
	}
	if err := json.Unmarshal([]byte(events[0]), &ev); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"x1": 40, "y1": 30, "x2": 72, "y2": 54}
	for k, v := range want {
		if math.Abs(ev.Payload.BBox[k]-v) > 2 {
			t.Fatalf("bbox %v, want about %v", ev.Payload.BBox, want)
		}
	}
	if ev.Payload.ObjectType != "PERSON" { // class 0 through the default class map
		t.Fatalf("object_type %q", ev.Payload.ObjectType)
	}
}

// TestYoloOverlayGraphHeadless runs HEAD's YOLO overlay graph shape (its
// keys and __runtime__ options) with an adapter and a display output_dir:
// every frame reaches the display with the red box outlined in color_bgr.
func TestYoloOverlayGraphHeadless(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	mp4 := redBoxClip(t, dir)
	shots := filepath.Join(dir, "display")
	g := `version: 2
nodes:
  - {id: src, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource,
     config: {path: "` + mp4 + `", source_id: file01, max_frames: 6, loop: false}}
  - id: yolo
    kind: node
    plugin: schnitzel_stream.packs.vision.nodes:YoloV8DetectorNode
    config:
      model_path: models/yolov8n.pt
      conf: 0.35
      iou: 0.45
      max_det: 100
      device: cpu
      command: ` + helperCommand() + `
      env: {` + adaptertest.EnvMode + `: red}
      input_format: bgr24
  - id: display
    kind: sink
    plugin: schnitzel_stream.packs.vision.nodes:OpenCvBboxDisplaySink
    config: {window_name: x, wait_key_ms: 1, line_thickness: 2, font_scale: 0.6, show_stats: true,
             stop_on_quit_key: true, forward: false, output_dir: "` + shots + `", keep_frames: true}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefix: "EV "}}
edges:
  - {from: src, to: yolo}
  - {from: yolo, to: display}
  - {from: yolo, to: out}
`
	frames, rep := runGraph(t, dir, g)
	if len(frames) != 6 || rep.Status != "ok" || rep.Metrics["node.display.shown_total"] != 6 || rep.Metrics["node.yolo.detected_total"] != 6 {
		t.Fatalf("%d frames, report %s %v", len(frames), rep.Status, rep.Metrics)
	}
	var fp struct {
		Kind    string `json:"kind"`
		Payload struct {
			Detections []struct {
				BBox      map[string]float64 `json:"bbox"`
				ClassID   int                `json:"class_id"`
				ClassName string             `json:"class_name"`
			} `json:"detections"`
		} `json:"payload"`
		Meta map[string]any `json:"meta"`
	}
	if err := json.Unmarshal([]byte(frames[0]), &fp); err != nil {
		t.Fatal(err)
	}
	if fp.Kind != "frame" || len(fp.Payload.Detections) != 1 || fp.Payload.Detections[0].ClassName != "red" ||
		fp.Meta["detection_count"] != 1.0 || fp.Meta["model"] != "yolov8n.pt" {
		t.Fatalf("frame packet %s", frames[0])
	}
	for k, v := range map[string]float64{"x1": 40, "y1": 30, "x2": 72, "y2": 54} {
		if math.Abs(fp.Payload.Detections[0].BBox[k]-v) > 2 {
			t.Fatalf("bbox %v", fp.Payload.Detections[0].BBox)
		}
	}
	f, err := os.Open(filepath.Join(shots, "file01_00000005.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The outline's top edge runs along y=30..31 from x=40 to 72 in (48,220,48) BGR.
	r, gr, b, _ := img.At(56, 30).RGBA()
	if r>>8 > 120 || gr>>8 < 150 || b>>8 > 120 {
		t.Fatalf("outline pixel (%d,%d,%d), want green", r>>8, gr>>8, b>>8)
	}
}

func TestModelAdapterClassMapFile(t *testing.T) {
	a := &jsonAdapter{answer: `{"detections": [
	  {"class_id": 1, "confidence": 0.9, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
	  {"class_id": 3, "confidence": 0.9, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}},
	  {"class_id": 9, "confidence": 0.9, "bbox": {"x1": 1, "y1": 1, "x2": 5, "y2": 5}}
	]}`}
	srv := httptest.NewServer(a)
	defer srv.Close()
	// The repository's copy of upstream's class map file.
	n := buildAdapter(t, adapterN, packet.MapOf("url", srv.URL, "class_map_path", "../../../configs/model_class_map.yaml"))
	outs, errs := process(t, n, 1)
	if errs[0] != nil || len(outs[0]) != 2 {
		t.Fatalf("%d packets, %v", len(outs[0]), errs[0])
	}
	var got []string
	for _, p := range outs[0] {
		m := p.Payload.(*packet.Map)
		et, _ := m.GetString("event_type")
		ot, _ := m.GetString("object_type")
		sv, _ := m.GetString("severity")
		got = append(got, et+"/"+ot+"/"+sv)
	}
	if strings.Join(got, " ") != "PPE_VIOLATION/PERSON/MEDIUM HAZARD_ALERT/UNKNOWN/MEDIUM" {
		t.Fatalf("mapped %v", got)
	}
	dir := t.TempDir()
	bad := map[string]string{"missing.yaml": "", "empty.yaml": "class_map: []\n", "broken.yaml": "class_map: [\n",
		"nokey.yaml": "class_map:\n  - {event_type: X}\n"}
	for name, body := range bad {
		path := filepath.Join(dir, name)
		if body != "" {
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r := plugin.NewRegistry()
		nodes.Register(r)
		n := plugintest.Build(t, r, adapterN, "node", packet.MapOf("url", srv.URL, "class_map_path", path))
		err := n.(plugin.Starter).Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), "class_map_path") || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: start error %v", name, err)
		}
		_ = n.(plugin.Closer).Close(context.Background())
	}
}
