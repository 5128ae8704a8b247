package video

import (
	"github.com/schnitzel-stream/schnitzel/packs/vision/ffmpeg"

	"context"
	"errors"
	"strings"
	"unicode"

	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// RTSPConfig is OpenCvRtspSource's config (HEAD's keys and defaults, plus
// ours after reconnect_max_attempts).
type RTSPConfig struct {
	URL                    string         `yaml:"url" secret:"true" example:"rtsp://user:password@192.168.1.20:554/stream1" required:"true" doc:"Stream URL (rtsp://, rtsps://; anything ffmpeg opens works). Credentials (user:password@, secret-looking query parameters) are masked in logs and errors and never reach ffmpeg's command line."`
	SourceID               string         `yaml:"source_id" doc:"Packet source_id and the camera name in logs; default the node id."`
	MaxFrames              int64          `yaml:"max_frames" doc:"Stop after this many frames; 0 = no limit."`
	Reconnect              bool           `yaml:"reconnect" doc:"Reopen after an open failure or a stream loss. When false an open failure is an error and a stream loss ends the source."`
	ReconnectBackoffSec    plugin.Seconds `yaml:"reconnect_backoff_sec" doc:"First wait before reopening; doubles after each failed attempt, resets after frames flowed again (at least 0.05 s)."`
	ReconnectBackoffMaxSec plugin.Seconds `yaml:"reconnect_backoff_max_sec" doc:"Upper bound of the wait."`
	ReconnectMaxAttempts   int64          `yaml:"reconnect_max_attempts" doc:"Consecutive failed opens before the source fails the run; 0 = retry forever."`
	Transport              string         `yaml:"transport" enum:"tcp,udp" doc:"RTSP transport for rtsp:// URLs (the seed's legacy source used tcp)."`
	FPS                    float64        `yaml:"fps" doc:"Resample to this frame rate with ffmpeg's fps filter; 0 keeps every frame."`
	OpenTimeoutSec         plugin.Seconds `yaml:"open_timeout_sec" doc:"Time from starting ffmpeg to the first frame before the attempt counts as failed."`
	ReadTimeoutSec         plugin.Seconds `yaml:"read_timeout_sec" doc:"No frame for this long means the stream is lost (a stalled camera must not look healthy)."`
	LatestOnly             bool           `yaml:"latest_only" doc:"When downstream is slower than the camera, hand over the newest frame and skip stale ones (skipped_total); false queues every frame."`
}

func (c *RTSPConfig) live() liveConfig {
	return liveConfig{SourceID: c.SourceID, MaxFrames: c.MaxFrames, Reconnect: c.Reconnect,
		ReconnectBackoffSec: c.ReconnectBackoffSec, ReconnectBackoffMaxSec: c.ReconnectBackoffMaxSec,
		ReconnectMaxAttempts: c.ReconnectMaxAttempts, FPS: c.FPS, OpenTimeoutSec: c.OpenTimeoutSec,
		ReadTimeoutSec: c.ReadTimeoutSec, LatestOnly: c.LatestOnly}
}

// Validate checks ranges.
func (c *RTSPConfig) Validate() error {
	var errs []error // every problem at once
	u := strings.TrimSpace(c.URL)
	if u == "" {
		errs = append(errs, plugin.Errorf("url", "must be a stream URL"))
	}
	// ffmpeg reads the URL from a line-based script (ffmpeg/inputscript.go).
	if i := strings.IndexFunc(u, unicode.IsControl); i >= 0 {
		errs = append(errs, plugin.Errorf("url", "contains a control character (U+%04X): %s", []rune(u[i:])[0], redact.URL(u)))
	}
	l := c.live()
	return errors.Join(append(errs, l.validate())...)
}

var rtspDefaults = RTSPConfig{
	Reconnect: true, ReconnectBackoffSec: 1, ReconnectBackoffMaxSec: 30, Transport: "tcp",
	OpenTimeoutSec: 20, ReadTimeoutSec: 10, LatestOnly: true,
}

func newRTSPSource(c RTSPConfig, env plugin.Env) (plugin.Source, error) {
	if c.SourceID == "" {
		c.SourceID = env.NodeID
	}
	url := strings.TrimSpace(c.URL)
	s := &liveSource{cfg: c.live(), env: env, kind: "rtsp", describe: redact.URL(url)}
	rtsp := strings.HasPrefix(strings.ToLower(url), "rtsp")
	if strings.Contains(url, "://") {
		// A network URL may hold credentials: keep it out of ffmpeg's argv.
		s.script = &ffmpeg.InputScript{URL: url}
		if rtsp {
			s.script.Opts = [][2]string{{"rtsp_transport", c.Transport}}
		}
	}
	s.input = func(context.Context) ([]string, error) {
		var a []string
		if rtsp {
			a = append(a, "-rtsp_transport", c.Transport)
		}
		return append(a, "-i", url), nil
	}
	return s, nil
}
