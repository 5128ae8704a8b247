package video

import (
	"context"
	"errors"
	"strconv"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// WebcamConfig is OpenCvWebcamSource's config (HEAD's keys and defaults,
// plus ours after reconnect_max_attempts).
type WebcamConfig struct {
	CameraIndex int64   `yaml:"camera_index" doc:"Device index: /dev/videoN on Linux, the Nth avfoundation device on macOS, the Nth DirectShow video device on Windows."`
	Device      string  `yaml:"device" doc:"Device to open instead of camera_index: a path (/dev/video2), an avfoundation index or name, a DirectShow device name."`
	VideoSize   string  `yaml:"video_size" doc:"Capture size asked of the device, e.g. 1280x720; empty = the device default."`
	CaptureFPS  float64 `yaml:"capture_fps" doc:"Capture rate asked of the device; 0 = the device default (30 on macOS, which needs one)."`
	LiveConfig  `yaml:",inline"`
}

// Validate checks ranges.
func (c *WebcamConfig) Validate() error {
	var errs []error // every problem at once
	if c.CameraIndex < 0 {
		errs = append(errs, plugin.Errorf("camera_index", "must be >= 0, got %d", c.CameraIndex))
	}
	if c.CaptureFPS < 0 {
		errs = append(errs, plugin.Errorf("capture_fps", "must be >= 0, got %v", c.CaptureFPS))
	}
	return errors.Join(append(errs, c.LiveConfig.validate())...)
}

var webcamDefaults = WebcamConfig{LiveConfig: LiveConfig{
	Reconnect: true, ReconnectBackoffSec: 0.5, ReconnectBackoffMaxSec: 5,
	OpenTimeoutSec: 15, ReadTimeoutSec: 5, LatestOnly: true,
}}

func newWebcamSource(c WebcamConfig, env plugin.Env) (plugin.Source, error) {
	if c.SourceID == "" {
		c.SourceID = env.NodeID
	}
	dev := webcamDevice{index: int(c.CameraIndex), name: c.Device, size: c.VideoSize, fps: c.CaptureFPS}
	s := &liveSource{cfg: c.LiveConfig, env: env, kind: "webcam", describe: dev.describe()}
	s.input = func(ctx context.Context) ([]string, error) { return dev.inputArgs(ctx) }
	idx := c.CameraIndex
	s.extraMeta = func(m *packet.Map) { m.Set("camera_index", idx) }
	return s, nil
}

// webcamDevice is what the per-OS files turn into ffmpeg input arguments.
type webcamDevice struct {
	index int
	name  string // overrides index
	size  string
	fps   float64
}

func (d webcamDevice) captureOpts(defaultFPS float64) []string {
	var a []string
	fps := d.fps
	if fps == 0 {
		fps = defaultFPS
	}
	if fps > 0 {
		a = append(a, "-framerate", strconv.FormatFloat(fps, 'f', -1, 64))
	}
	if d.size != "" {
		a = append(a, "-video_size", d.size)
	}
	return a
}
