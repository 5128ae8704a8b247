package legacy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// settings is upstream's PipelineSettings: the typed view of the merged
// config, with upstream's fallbacks for absent keys.
type settings struct {
	SiteID   string
	Timezone string // "" = UTC
	CameraID string
	Source   sourceSettings
	Sensor   bool
	FPSLimit int64
	Events   eventsSettings
	Dedup    dedupSettings
	Metrics  intervalSettings
	Heart    intervalSettings
	Rules    map[string]string
	Zones    zonesSettings
	Model    modelSettings
	RTSP     rtspSettings
	AppEnv   string
}

type rtspSettings struct {
	TimeoutSec, BaseDelaySec, MaxDelaySec float64
	MaxAttempts                           int64
	Transport                             string
}

type sourceSettings struct {
	Type    string // file, rtsp, webcam, plugin
	URL     string
	Path    string
	Index   *int64
	Adapter string
}

type eventsSettings struct {
	PostURL          string
	TimeoutSec       float64
	RetryMaxAttempts int64
	RetryBackoffSec  float64
	SnapshotBaseDir  string
	SnapshotPrefix   string
	EmitterAdapter   string
}

type dedupSettings struct {
	Enabled       bool
	CooldownSec   float64
	PruneInterval int64
}

type intervalSettings struct {
	Enabled     bool
	IntervalSec float64
}

type zonesSettings struct {
	Source   string
	FilePath string
	API      *zonesAPISettings
}

type zonesAPISettings struct {
	BaseURL, PathTemplate                    string
	TimeoutSec, CacheTTLSec, ErrorBackoffSec float64
	MaxFailures                              int64
}

type modelSettings struct {
	Mode    string
	Adapter string
}

// overrides are the CLI's legacy flags that shape the settings.
type overrides struct {
	CameraID   string
	Video      string
	SourceType string
}

// conv collects the first conversion error, naming the key.
type conv struct{ err error }

func (c *conv) fail(key string, v any, want string) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: expected %s, got %s", key, want, packet.PyStr(v))
	}
}

// str is Python's str() of m[key] (def when absent).
func (c *conv) str(m *packet.Map, key, def string) string {
	v, ok := m.Get(key)
	if !ok {
		return def
	}
	return packet.PyStr(v)
}

// optStr is m.get(key) or None, as a string ("" for None or falsy).
func (c *conv) optStr(m *packet.Map, key string) string {
	v, _ := m.Get(key)
	if !packet.Truthy(v) {
		return ""
	}
	return packet.PyStr(v)
}

// float is Python's float(m.get(key, def)).
func (c *conv) float(m *packet.Map, path, key string, def float64) float64 {
	v, ok := m.Get(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f
		}
	}
	c.fail(path+"."+key, v, "a number")
	return def
}

// int is Python's int(m.get(key, def)): floats truncate.
func (c *conv) int(m *packet.Map, path, key string, def int64) int64 {
	v, ok := m.Get(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		if !math.IsInf(x, 0) && !math.IsNaN(x) {
			return int64(x)
		}
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return n
		}
	}
	c.fail(path+"."+key, v, "an integer")
	return def
}

// bool is Python's bool(m.get(key, def)).
func (c *conv) bool(m *packet.Map, key string, def bool) bool {
	v, ok := m.Get(key)
	if !ok {
		return def
	}
	return packet.Truthy(v)
}

// repoPath resolves a config path against the project root.
func repoPath(p, root string) string {
	if p == "" {
		return ""
	}
	if strings.HasPrefix(p, "~/") {
		// expanduser; a failure leaves the path as written
		if home, err := userHome(); err == nil {
			p = filepath.Join(home, p[2:])
		}
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// selectCamera picks the camera: by id (an unknown id is an error), else
// the first enabled camera of the preferred source type, else the first
// enabled camera, else the first.
func selectCamera(cams []*packet.Map, id, preferType string) (*packet.Map, error) {
	if id != "" {
		for _, c := range cams {
			if cameraID(c) == id {
				return c, nil
			}
		}
		return nil, fmt.Errorf("camera_id not found: %s", id)
	}
	enabled := func(c *packet.Map) bool {
		v, ok := c.Get("enabled")
		return !ok || packet.Truthy(v)
	}
	if preferType != "" {
		for _, c := range cams {
			if enabled(c) && sub(c, "source").Len() > 0 {
				if t, _ := sub(c, "source").Get("type"); t == preferType {
					return c, nil
				}
			}
		}
	}
	for _, c := range cams {
		if enabled(c) {
			return c, nil
		}
	}
	if len(cams) > 0 {
		return cams[0], nil
	}
	return nil, nil
}

// buildSettings is upstream's load_pipeline_settings on a merged,
// validated config.
func buildSettings(cfg *packet.Map, root string, o overrides) (*settings, error) {
	var c conv
	s := &settings{}
	app := sub(cfg, "app")
	s.SiteID = c.str(app, "site_id", "S000")
	if v, _ := app.Get("timezone"); v != nil {
		s.Timezone = packet.PyStr(v)
	}
	s.AppEnv = c.str(app, "env", "dev")

	var cams []*packet.Map
	if list, ok := sub2list(cfg, "cameras"); ok {
		for _, it := range list {
			if m, isMap := it.(*packet.Map); isMap {
				cams = append(cams, m)
			}
		}
	}
	prefer := o.SourceType
	if prefer == "" {
		prefer = "file"
	}
	cam, err := selectCamera(cams, o.CameraID, prefer)
	if err != nil {
		return nil, err
	}
	if cam == nil {
		cam = packet.NewMap(0)
	}
	camSrc := sub(cam, "source")
	global := sub(cfg, "source")
	st := o.SourceType
	switch {
	case st != "":
	case o.Video != "":
		st = "file"
	default:
		if v, ok := global.Get("type"); ok {
			st = packet.PyStr(v)
		} else if v, ok := camSrc.Get("type"); ok {
			st = packet.PyStr(v)
		} else {
			st = "file"
		}
	}
	if !validSourceType(st) {
		return nil, fmt.Errorf("unsupported source type: %s (want file, rtsp, webcam or plugin)", st)
	}
	s.Source.Type = st
	s.Source.Adapter = c.optStr(global, "adapter")
	if s.Source.Adapter == "" {
		s.Source.Adapter = c.optStr(camSrc, "adapter")
	}
	switch {
	case st == "rtsp" || st == "plugin":
	case o.Video != "":
		s.Source.Path = o.Video
	default:
		s.Source.Path = repoPath(c.optStr(camSrc, "path"), root)
	}
	if st == "rtsp" {
		s.Source.URL = c.optStr(camSrc, "url")
	}
	if st == "webcam" {
		raw, ok := camSrc.Get("index")
		if !ok || raw == nil {
			raw, _ = camSrc.Get("path")
		}
		switch x := raw.(type) {
		case int64:
			s.Source.Index = &x
		case float64:
			n := int64(x)
			s.Source.Index = &n
		case string:
			if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				s.Source.Index = &n
			}
		}
	}

	s.FPSLimit = c.int(sub(cfg, "ingest"), "ingest", "fps_limit", 10)

	ev := sub(cfg, "events")
	retry := sub(ev, "retry")
	snap := sub(ev, "snapshot")
	s.Events = eventsSettings{
		PostURL:          c.str(ev, "post_url", "http://localhost:8080/api/events"),
		TimeoutSec:       c.float(ev, "events", "timeout_sec", 3),
		RetryMaxAttempts: c.int(retry, "events.retry", "max_attempts", 5),
		RetryBackoffSec:  c.float(retry, "events.retry", "backoff_sec", 1),
		SnapshotBaseDir:  c.optStr(snap, "base_dir"),
		SnapshotPrefix:   c.optStr(snap, "public_prefix"),
		EmitterAdapter:   c.optStr(ev, "emitter_adapter"),
	}
	dd := sub(cfg, "dedup")
	s.Dedup = dedupSettings{
		Enabled:       c.bool(dd, "enabled", false),
		CooldownSec:   c.float(dd, "dedup", "cooldown_sec", 10),
		PruneInterval: c.int(dd, "dedup", "prune_interval", 100),
	}
	mt := sub(cfg, "metrics")
	s.Metrics = intervalSettings{Enabled: c.bool(mt, "enabled", true), IntervalSec: c.float(mt, "metrics", "interval_sec", 10)}
	hb := sub(cfg, "heartbeat")
	s.Heart = intervalSettings{Enabled: c.bool(hb, "enabled", true), IntervalSec: c.float(hb, "heartbeat", "interval_sec", 15)}

	s.Rules = map[string]string{}
	for _, e := range sub(sub(cfg, "rules"), "rule_point_by_event_type").Entries() {
		s.Rules[e.Key] = packet.PyStr(e.Value)
	}

	zc := sub(cfg, "zones")
	s.Zones = zonesSettings{Source: c.str(zc, "source", "api"), FilePath: repoPath(c.optStr(zc, "file_path"), root)}
	if api := sub(zc, "api"); api.Len() > 0 {
		s.Zones.API = &zonesAPISettings{
			BaseURL:         c.str(api, "base_url", ""),
			PathTemplate:    c.str(api, "get_path_template", ""),
			TimeoutSec:      c.float(api, "zones.api", "timeout_sec", 3),
			CacheTTLSec:     c.float(api, "zones.api", "cache_ttl_sec", 30),
			ErrorBackoffSec: c.float(api, "zones.api", "error_backoff_sec", 5),
			MaxFailures:     c.int(api, "zones.api", "max_failures", 3),
		}
	}
	rt := sub(cfg, "rtsp")
	s.RTSP = rtspSettings{
		TimeoutSec:   c.float(rt, "rtsp", "timeout_sec", 5),
		BaseDelaySec: c.float(rt, "rtsp", "base_delay_sec", 0.5),
		MaxDelaySec:  c.float(rt, "rtsp", "max_delay_sec", 10),
		MaxAttempts:  c.int(rt, "rtsp", "max_attempts", 0),
		Transport:    c.str(rt, "transport", "tcp"),
	}
	md := sub(cfg, "model")
	s.Model = modelSettings{Mode: c.str(md, "mode", "real"), Adapter: c.optStr(md, "adapter")}
	s.Sensor = c.bool(sub(cfg, "sensor"), "enabled", false)

	s.CameraID = cameraID(cam)
	if s.CameraID == "" {
		s.CameraID = o.CameraID
	}
	if s.CameraID == "" {
		s.CameraID = "cam00"
	}
	if c.err != nil {
		return nil, c.err
	}
	return s, nil
}

func sub2list(cfg *packet.Map, key string) ([]any, bool) {
	v, ok := cfg.Get(key)
	l, isList := v.([]any)
	return l, ok && isList
}

func userHome() (string, error) { return os.UserHomeDir() }
