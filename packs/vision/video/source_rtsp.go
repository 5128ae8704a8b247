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
	URL        string `yaml:"url" secret:"true" example:"rtsp://user:password@192.168.1.20:554/stream1" required:"true" doc:"Stream URL (rtsp://, rtsps://; anything ffmpeg opens works). Credentials (user:password@, secret-looking query parameters) are masked in logs and errors and never reach ffmpeg's command line."`
	LiveConfig `yaml:",inline"`
	Transport  string `yaml:"transport" enum:"tcp,udp" doc:"RTSP transport for rtsp:// URLs (the seed's legacy source used tcp)."`
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
	return errors.Join(append(errs, c.LiveConfig.validate())...)
}

var rtspDefaults = RTSPConfig{LiveConfig: LiveConfig{
	Reconnect: true, ReconnectBackoffSec: 1, ReconnectBackoffMaxSec: 30,
	OpenTimeoutSec: 20, ReadTimeoutSec: 10, LatestOnly: true,
}, Transport: "tcp"}

func newRTSPSource(c RTSPConfig, env plugin.Env) (plugin.Source, error) {
	if c.SourceID == "" {
		c.SourceID = env.NodeID
	}
	url := strings.TrimSpace(c.URL)
	s := &liveSource{cfg: c.LiveConfig, env: env, kind: "rtsp", describe: redact.URL(url)}
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
