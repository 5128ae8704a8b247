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
	CameraIndex            int64          `yaml:"camera_index" doc:"Device index: /dev/videoN on Linux, the Nth avfoundation device on macOS, the Nth DirectShow video device on Windows."`
	SourceID               string         `yaml:"source_id" doc:"Packet source_id and the camera name in logs; default the node id."`
	MaxFrames              int64          `yaml:"max_frames" doc:"Stop after this many frames; 0 = no limit."`
	Reconnect              bool           `yaml:"reconnect" doc:"Reopen after an open failure (a missing device) or a stream loss. When false an open failure is an error and a stream loss ends the source."`
	ReconnectBackoffSec    plugin.Seconds `yaml:"reconnect_backoff_sec" doc:"First wait before reopening; doubles after each failed attempt, resets after frames flowed again (at least 0.05 s)."`
	ReconnectBackoffMaxSec plugin.Seconds `yaml:"reconnect_backoff_max_sec" doc:"Upper bound of the wait."`
	ReconnectMaxAttempts   int64          `yaml:"reconnect_max_attempts" doc:"Consecutive failed opens before the source fails the run; 0 = retry forever."`
	Device                 string         `yaml:"device" doc:"Device to open instead of camera_index: a path (/dev/video2), an avfoundation index or name, a DirectShow device name."`
	VideoSize              string         `yaml:"video_size" doc:"Capture size asked of the device, e.g. 1280x720; empty = the device default."`
	CaptureFPS             float64        `yaml:"capture_fps" doc:"Capture rate asked of the device; 0 = the device default (30 on macOS, which needs one)."`
	FPS                    float64        `yaml:"fps" doc:"Resample to this frame rate with ffmpeg's fps filter; 0 keeps every frame."`
	OpenTimeoutSec         plugin.Seconds `yaml:"open_timeout_sec" doc:"Time from starting ffmpeg to the first frame before the attempt counts as failed."`
	ReadTimeoutSec         plugin.Seconds `yaml:"read_timeout_sec" doc:"No frame for this long means the device is lost."`
	LatestOnly             bool           `yaml:"latest_only" doc:"When downstream is slower than the camera, hand over the newest frame and skip stale ones (skipped_total); false queues every frame."`
}

func (c *WebcamConfig) live() liveConfig {
	return liveConfig{SourceID: c.SourceID, MaxFrames: c.MaxFrames, Reconnect: c.Reconnect,
		ReconnectBackoffSec: c.ReconnectBackoffSec, ReconnectBackoffMaxSec: c.ReconnectBackoffMaxSec,
		ReconnectMaxAttempts: c.ReconnectMaxAttempts, FPS: c.FPS, OpenTimeoutSec: c.OpenTimeoutSec,
		ReadTimeoutSec: c.ReadTimeoutSec, LatestOnly: c.LatestOnly}
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
	l := c.live()
	return errors.Join(append(errs, l.validate())...)
}

var webcamDefaults = WebcamConfig{
	Reconnect: true, ReconnectBackoffSec: 0.5, ReconnectBackoffMaxSec: 5,
	OpenTimeoutSec: 15, ReadTimeoutSec: 5, LatestOnly: true,
}

func newWebcamSource(c WebcamConfig, env plugin.Env) (plugin.Source, error) {
	if c.SourceID == "" {
		c.SourceID = env.NodeID
	}
	dev := webcamDevice{index: int(c.CameraIndex), name: c.Device, size: c.VideoSize, fps: c.CaptureFPS}
	s := &liveSource{cfg: c.live(), env: env, kind: "webcam", describe: dev.describe()}
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
