package legacy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func get(t *testing.T, m *packet.Map, path string) any {
	t.Helper()
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(*packet.Map)
		if !ok {
			return nil
		}
		cur, _ = mm.Get(k)
	}
	return cur
}

func TestLayeringProfileAndEnv(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"default.yaml": "app: {site_id: S001, env: dev}\nlogging: {level: INFO, format: plain}\ningest: {fps_limit: 10}\nevents: {post_url: 'http://b/api', retry: {max_attempts: 5, backoff_sec: 1.0}}\ncameras: [{id: a}]\n",
		"cameras.yaml": "cameras: [{id: cam01, source: {type: rtsp, url: 'rtsp://x'}}]\n",
		"dev.yaml":     "logging: {level: DEBUG}\nevents: {retry: {max_attempts: 2}}\n",
		"prod.yaml":    "logging: {level: ERROR}\n",
		"other.yaml":   "app: {site_id: IGNORED}\n",
	})
	cfg, err := loadLayers(dir, envOf(map[string]string{
		"AI_LOGGING_LEVEL": "INFO", "AI_LOG_LEVEL": "WARNING", "AI_INGEST_FPS_LIMIT": "12",
		"AI_RTSP_TIMEOUT_SEC": "2.5", "AI_SENSOR_ENABLED": "FALSE", "AI_SENSOR_TOPIC": "007", "AI_MODEL_MODE": "mock",
	}))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]any{
		"app.site_id":               "S001",
		"logging.level":             "WARNING", // AI_LOG_LEVEL wins over AI_LOGGING_LEVEL and dev.yaml
		"logging.format":            "plain",
		"events.retry.max_attempts": int64(2), // dev.yaml merged into the nested mapping
		"events.retry.backoff_sec":  1.0,
		"ingest.fps_limit":          int64(12),
		"rtsp.timeout_sec":          2.5,
		"sensor.enabled":            false,
		"sensor.topic":              int64(7), // upstream's coercion: numeric text becomes a number
		"model.mode":                "mock",
	}
	for path, want := range cases {
		if got := get(t, cfg, path); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
	if cams := get(t, cfg, "cameras").([]any); len(cams) != 1 || get(t, cams[0].(*packet.Map), "id") != "cam01" {
		t.Errorf("lists replace, not merge: %s", packet.PyStr(cams))
	}
}

func TestLayeringFallbackToAllFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml":    "app: {site_id: A, env: prod}\n",
		"b.yaml":    "app: {site_id: B}\n",
		"dev.yaml":  "app: {site_id: DEV}\n",
		"prod.yaml": "logging: {level: ERROR}\n",
	})
	cfg, err := loadLayers(dir, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if get(t, cfg, "app.site_id") != "B" || get(t, cfg, "logging.level") != "ERROR" || get(t, cfg, "app.env") != "prod" {
		t.Fatalf("merged %s", packet.PyStr(cfg))
	}
	writeFiles(t, dir, map[string]string{"default.yaml": "- not a mapping\n"})
	if _, err := loadLayers(dir, envOf(nil)); err == nil || !strings.Contains(err.Error(), "default.yaml") {
		t.Fatalf("list at top level: %v", err)
	}
}

func TestCoerceEnv(t *testing.T) {
	cases := map[string]any{"true": true, "False": false, "12": int64(12), " 7 ": int64(7), "-3": int64(-3),
		"2.5": 2.5, "1e3": 1000.0, "tcp": "tcp", "": ""}
	for in, want := range cases {
		if got := coerceEnv(in); got != want {
			t.Errorf("coerceEnv(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	base := "app: {site_id: S}\ningest: {fps_limit: 10}\nevents: {}\n"
	cases := []struct {
		name, yaml, err string
	}{
		{"ok", base, ""},
		{"missing events", "app: {}\ningest: {}\n", "missing required config section: events"},
		{"bad model mode", base + "model: {mode: fake}\n", "model.mode must be 'real' or 'mock'"},
		{"adapter not a string", base + "model: {adapter: 3}\n", "model.adapter must be str"},
		{"fps not a number", "app: {}\ningest: {fps_limit: ten}\nevents: {}\n", "ingest.fps_limit must be number"},
		{"snapshot without base_dir", "app: {}\ningest: {}\nevents: {snapshot: {public_prefix: /s}}\n", "base_dir required"},
		{"cameras not a list", base + "cameras: {a: 1}\n", "cameras must be list"},
		{"duplicate camera", base + "cameras: [{id: c1}, {camera_id: c1}]\n", "duplicate camera id: c1"},
		{"bad camera type", base + "cameras: [{id: c1, source: {type: ftp}}]\n", "unsupported camera source.type: ftp"},
		{"webcam index", base + "cameras: [{id: c1, source: {type: webcam, index: '0'}}]\n", "webcam source.index must be int"},
		{"plugin without adapter", base + "cameras: [{id: c1, source: {type: plugin}}]\n", "requires source.adapter"},
		{"global source type", base + "source: {type: tape}\n", "unsupported source.type: tape"},
		{"zones source", base + "zones: {source: db}\n", "zones.source must be one of"},
		{"sensor without adapter", base + "sensor: {enabled: true}\n", "enabled sensor requires"},
		{"sensor queue size", base + "sensor: {queue_size: 0}\n", "sensor.queue_size must be positive int"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"default.yaml": c.yaml})
		cfg, err := loadLayers(dir, envOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = validate(cfg)
		if c.err == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.err)
		}
	}
}

// TestShippedConfigs loads the repo's configs/ (copies of the seed's) as a
// default run does.
func TestShippedConfigs(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "configs")
	cfg, err := loadLayers(dir, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(cfg); err != nil {
		t.Fatal(err)
	}
	s, err := buildSettings(cfg, "/repo", overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if s.CameraID != "cam03" || s.Source.Type != "file" || s.Source.Path != "/repo/tests/play/2048246-hd_1920_1080_24fps.mp4" {
		t.Errorf("camera %s %s %s", s.CameraID, s.Source.Type, s.Source.Path)
	}
	if s.SiteID != "S001" || s.Timezone != "Asia/Seoul" || s.FPSLimit != 10 || s.Model.Mode != "real" ||
		s.Zones.Source != "api" || s.Zones.API == nil || s.Zones.API.BaseURL != "http://backend:8080" ||
		s.Events.RetryMaxAttempts != 5 || s.Dedup.Enabled || s.Rules["FIRE_DETECTED"] != "bbox_center" {
		t.Errorf("settings %+v", s)
	}
}

func TestCameraSelection(t *testing.T) {
	cams := "cameras:\n" +
		"  - {id: cam01, source: {type: rtsp, url: 'rtsp://h/1'}}\n" +
		"  - {id: off, enabled: false, source: {type: file, path: off.mp4}}\n" +
		"  - {id: cam03, source: {type: file, path: v.mp4}}\n" +
		"  - {id: web, source: {type: webcam, path: '2'}}\n"
	base := "app: {site_id: S}\ningest: {}\nevents: {}\n"
	cases := []struct {
		name, extra string
		o           overrides
		cam, typ    string
		path, url   string
		index       int64
		err         string
	}{
		{"default prefers file", cams, overrides{}, "cam03", "file", "/r/v.mp4", "", -1, ""},
		{"source type override", cams, overrides{SourceType: "rtsp"}, "cam01", "rtsp", "", "rtsp://h/1", -1, ""},
		{"camera id", cams, overrides{CameraID: "web"}, "web", "webcam", "/r/2", "", 2, ""},
		{"video forces file", cams, overrides{CameraID: "cam01", Video: "/v/x.mp4"}, "cam01", "file", "/v/x.mp4", "", -1, ""},
		{"global source type wins over camera", cams + "source: {type: webcam}\n", overrides{}, "cam03", "webcam", "/r/v.mp4", "", -1, ""},
		{"unknown camera", cams, overrides{CameraID: "nope"}, "", "", "", "", -1, "camera_id not found: nope"},
		{"no cameras", "", overrides{}, "cam00", "file", "", "", -1, ""},
		{"no cameras, cli id", "", overrides{CameraID: "x"}, "", "", "", "", -1, "camera_id not found: x"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"default.yaml": base + c.extra})
		cfg, _ := loadLayers(dir, envOf(nil))
		s, err := buildSettings(cfg, "/r", c.o)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		idx := int64(-1)
		if s.Source.Index != nil {
			idx = *s.Source.Index
		}
		if s.CameraID != c.cam || s.Source.Type != c.typ || s.Source.Path != c.path || s.Source.URL != c.url || idx != c.index {
			t.Errorf("%s: got %s %s %q %q %d", c.name, s.CameraID, s.Source.Type, s.Source.Path, s.Source.URL, idx)
		}
	}
}

func TestSampler(t *testing.T) {
	cases := []struct {
		target int64
		fps    float64
		want   string
	}{
		{10, 24, "0,3,5,8,10,12,15,17,20,22,24,27,29"},
		{10, 30, "0,3,6,9,12,15,18,21,24,27"},
		{10, 0, "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29"},
		{30, 24, "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29"},
		{0, 10, "0,10,20"},
	}
	for _, c := range cases {
		s := newSampler(c.target, c.fps)
		var got []string
		for i := int64(0); i < 30; i++ {
			if s.keep(i) {
				got = append(got, packet.PyStr(i))
			}
		}
		if g := strings.Join(got, ","); g != c.want {
			t.Errorf("%d/%v: %s, want %s", c.target, c.fps, g, c.want)
		}
	}
}
