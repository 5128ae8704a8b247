package compat

import (
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// Preset is one entry of upstream's preset table (ops/presets.py
// build_preset_table): a graph from configs/graphs and the variables it
// gets by default.
type Preset struct {
	ID           string
	Description  string
	Graph        string // file name under configs/graphs
	Experimental bool
	Env          map[string]string // defaults; relative paths resolve against the graphs dir
	PathVars     []string          // which of Env are paths
}

// sample and model are upstream's defaults, which it made absolute
// against its repo root.
const (
	samplePath = "data/samples/2048246-hd_1920_1080_24fps.mp4"
	modelPath  = "models/yolov8n.pt"
)

// Presets is upstream's table, in id order.
var Presets = []Preset{
	{ID: "file_frames", Description: "Video-file source + frame sampler + print sink", Graph: "dev_video_file_frames_v2.yaml",
		Env: map[string]string{"SS_INPUT_PATH": samplePath, "SS_INPUT_LOOP": "false"}, PathVars: []string{"SS_INPUT_PATH"}},
	{ID: "file_yolo_headless", Description: "Video-file YOLO headless run (no OpenCV GUI required)", Graph: "dev_video_file_yolo_headless_v2.yaml", Experimental: true,
		Env:      map[string]string{"SS_INPUT_PATH": samplePath, "SS_YOLO_MODEL_PATH": modelPath, "SS_YOLO_DEVICE": "cpu", "SS_INPUT_LOOP": "false"},
		PathVars: []string{"SS_INPUT_PATH", "SS_YOLO_MODEL_PATH"}},
	{ID: "file_yolo_view", Description: "Video-file YOLO overlay with OpenCV window (GUI required)", Graph: "dev_video_file_yolo_overlay_v2.yaml", Experimental: true,
		Env:      map[string]string{"SS_INPUT_PATH": samplePath, "SS_YOLO_MODEL_PATH": modelPath, "SS_YOLO_DEVICE": "cpu", "SS_INPUT_LOOP": "true"},
		PathVars: []string{"SS_INPUT_PATH", "SS_YOLO_MODEL_PATH"}},
	{ID: "inproc_demo", Description: "Minimal in-proc packet flow demo", Graph: "dev_inproc_demo_v2.yaml"},
	{ID: "webcam_frames", Description: "Webcam source + frame sampler + print sink", Graph: "dev_webcam_frames_v2.yaml",
		Env: map[string]string{"SS_CAMERA_INDEX": "0"}},
	{ID: "webcam_yolo", Description: "Webcam YOLO overlay", Graph: "dev_webcam_yolo_overlay_v2.yaml", Experimental: true,
		Env: map[string]string{"SS_CAMERA_INDEX": "0", "SS_YOLO_MODEL_PATH": modelPath, "SS_YOLO_DEVICE": "cpu"}, PathVars: []string{"SS_YOLO_MODEL_PATH"}},
}

func presetByID(id string) *Preset {
	i := slices.IndexFunc(Presets, func(p Preset) bool { return p.ID == id })
	if i < 0 {
		return nil
	}
	return &Presets[i]
}

// presetGraph reads the preset's graph from fsys (nil: none shipped).
func presetGraph(fsys fs.FS, p *Preset) ([]byte, bool) {
	if fsys == nil {
		return nil, false
	}
	b, err := fs.ReadFile(fsys, p.Graph)
	return b, err == nil
}

// presetRequest is upstream's PresetRequest (control_api/models.py).
// Pointers tell "absent" from zero; upstream's API did not check the
// ranges its CLI checks (D-API-10), we do.
type presetRequest struct {
	Experimental bool     `json:"experimental"`
	MaxEvents    *int64   `json:"max_events"`
	InputPath    string   `json:"input_path"`
	CameraIndex  *int     `json:"camera_index"`
	Device       string   `json:"device"`
	ModelPath    string   `json:"model_path"`
	YoloConf     *float64 `json:"yolo_conf"`
	YoloIOU      *float64 `json:"yolo_iou"`
	YoloMaxDet   *int     `json:"yolo_max_det"`
	Loop         string   `json:"loop"`
}

// check returns the first bad field, as upstream's stream_run.py does.
func (q *presetRequest) check(maxEvents int64) string {
	switch {
	case q.MaxEvents != nil && *q.MaxEvents <= 0:
		return "max_events must be > 0"
	case q.MaxEvents != nil && *q.MaxEvents > maxEvents:
		return "max_events must be <= " + strconv.FormatInt(maxEvents, 10)
	case q.CameraIndex != nil && *q.CameraIndex < 0:
		return "camera_index must be >= 0"
	case q.YoloConf != nil && (*q.YoloConf < 0 || *q.YoloConf > 1):
		return "yolo_conf must be in [0, 1]"
	case q.YoloIOU != nil && (*q.YoloIOU < 0 || *q.YoloIOU > 1):
		return "yolo_iou must be in [0, 1]"
	case q.YoloMaxDet != nil && *q.YoloMaxDet <= 0:
		return "yolo_max_det must be > 0"
	case q.Loop != "" && q.Loop != "true" && q.Loop != "false":
		return `loop must be "", "true" or "false"`
	case strings.ContainsFunc(q.Device, func(r rune) bool { return r < 0x20 }):
		return "device contains control characters"
	}
	return ""
}

// env is the preset's variables: its defaults, then the request's
// overrides (upstream's build_preset_env mapping). Paths are resolved
// by resolve (confined to the graphs and state dirs).
func (q *presetRequest) env(p *Preset, resolve func(string) (string, error)) (map[string]string, error) {
	env := map[string]string{}
	for k, v := range p.Env {
		if slices.Contains(p.PathVars, k) {
			if abs, err := resolve(v); err == nil {
				v = abs
			}
		}
		env[k] = v
	}
	set := func(k, v string) { env[k] = v }
	if q.InputPath != "" {
		abs, err := resolve(q.InputPath)
		if err != nil {
			return nil, err
		}
		set("SS_INPUT_PATH", abs)
	}
	if q.CameraIndex != nil {
		set("SS_CAMERA_INDEX", strconv.Itoa(*q.CameraIndex))
	}
	if q.Device != "" {
		set("SS_YOLO_DEVICE", q.Device)
	}
	if q.Loop != "" {
		set("SS_INPUT_LOOP", q.Loop)
	}
	if q.ModelPath != "" {
		abs, err := resolve(q.ModelPath)
		if err != nil {
			return nil, err
		}
		set("SS_YOLO_MODEL_PATH", abs)
	}
	if q.YoloConf != nil {
		set("SS_YOLO_CONF", pyFloat(*q.YoloConf))
	}
	if q.YoloIOU != nil {
		set("SS_YOLO_IOU", pyFloat(*q.YoloIOU))
	}
	if q.YoloMaxDet != nil {
		set("SS_YOLO_MAX_DET", strconv.Itoa(*q.YoloMaxDet))
	}
	return env, nil
}

// pyFloat is Python's str(float): 0.41, 1.0.
func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}
