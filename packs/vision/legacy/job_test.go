package legacy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not in PATH: install ffmpeg to run the legacy job tests", b)
		}
	}
}

// video24 renders a 24 fps test clip of the given seconds.
func video24(t *testing.T, dir string, sec string) string {
	t.Helper()
	needFFmpeg(t)
	p := filepath.Join(dir, "clip24.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
		"-i", "testsrc=s=160x120:r=24:d="+sec, "-pix_fmt", "yuv420p", p).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return p
}

// projectWithConfigs copies the repo's configs (the seed's) into a
// temporary project and points the zone API and the backend at url, so
// that nothing leaves loopback.
func projectWithConfigs(t *testing.T, url string) string {
	t.Helper()
	root := t.TempDir()
	for _, n := range []string{"default.yaml", "cameras.yaml", "dev.yaml", "prod.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", n))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("http://backend:8080"), []byte(url))
		writeFiles(t, root, map[string]string{filepath.Join("configs", n): string(b)})
	}
	return root
}

// zoneAPIDown answers every request with 503 and counts them.
func zoneAPIDown(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func runJob(t *testing.T, root string, args plugin.JobArgs, env map[string]string) (map[string]int64, *logbuf.Buffer, error) {
	t.Helper()
	logs := &logbuf.Buffer{}
	metrics := map[string]int64{}
	je := plugin.JobEnv{
		Config: packet.MapOf("config_dir", filepath.Join(root, "configs")), Args: args, Getenv: envOf(env),
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: func(n string, v int64) { metrics[n] = v },
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := (&Job{}).Run(ctx, je)
	return metrics, logs, err
}

func readJSONL(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

var seoulTS = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+09:00$`)

// TestGoldenMockRun is upstream's tests/regression/test_golden.py: mock
// model, a 24 fps file, --output-jsonl, --max-events 5; the 7 compared keys
// must equal golden_events.jsonl in order (track 0,3,5,8,10; zone empty
// because the zone API is down).
func TestGoldenMockRun(t *testing.T) {
	api, calls := zoneAPIDown(t)
	root := projectWithConfigs(t, api.URL)
	dir := t.TempDir()
	clip := video24(t, dir, "2")
	out := filepath.Join(dir, "out", "events.jsonl")
	snaps := filepath.Join(dir, "snapshots")
	metrics, logs, err := runJob(t, root, plugin.JobArgs{Video: clip, OutputJSONL: out, MaxEvents: 5}, map[string]string{
		"AI_MODEL_MODE": "mock", "AI_EVENTS_SNAPSHOT_BASE_DIR": snaps, "AI_EVENTS_SNAPSHOT_PUBLIC_PREFIX": "/snapshots",
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs)
	}
	got := readJSONL(t, out)
	golden := readJSONL(t, filepath.Join("..", "testdata", "legacy_golden_events.jsonl"))
	if len(got) != len(golden) {
		t.Fatalf("%d events, golden %d", len(got), len(golden))
	}
	for i := range golden {
		for _, k := range []string{"event_type", "object_type", "severity", "track_id", "bbox", "confidence", "zone"} {
			g, _ := json.Marshal(got[i][k])
			w, _ := json.Marshal(golden[i][k])
			if !bytes.Equal(g, w) {
				t.Errorf("event %d %s = %s, golden %s", i, k, g, w)
			}
		}
		if got[i]["site_id"] != "S001" || got[i]["camera_id"] != "cam03" || !seoulTS.MatchString(got[i]["ts"].(string)) {
			t.Errorf("event %d: site %v camera %v ts %v", i, got[i]["site_id"], got[i]["camera_id"], got[i]["ts"])
		}
		sp, _ := got[i]["snapshot_path"].(string)
		if !strings.HasPrefix(sp, "/snapshots/S001/cam03/") || !strings.HasSuffix(sp, "_"+packet.PyStr(int64(golden[i]["track_id"].(float64)))+".jpg") {
			t.Errorf("event %d snapshot_path %q", i, sp)
		}
		f, err := os.Open(filepath.Join(snaps, strings.TrimPrefix(sp, "/snapshots/")))
		if err != nil {
			t.Fatalf("snapshot of event %d: %v", i, err)
		}
		img, err := jpeg.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() != 160 || img.Bounds().Dy() != 120 {
			t.Fatalf("snapshot of event %d: %v %v", i, err, img)
		}
	}
	// Frames 0..10 were read (10 is the 5th sampled); 6 of them dropped.
	if metrics["events_total"] != 5 || metrics["frames_total"] != 11 || metrics["drops_total"] != 6 {
		t.Errorf("metrics %v", metrics)
	}
	if calls.Load() == 0 {
		t.Error("the zone API was never asked")
	}
}

// TestMaxEventsThreeAndDryRun mirrors tests/integration/test_pipeline_jsonl.py
// (finding the configs from the graph's location, configs/graphs/ →
// configs/) and checks --dry-run logs each event.
func TestMaxEventsThreeAndDryRun(t *testing.T) {
	api, _ := zoneAPIDown(t)
	root := projectWithConfigs(t, api.URL)
	dir := t.TempDir()
	clip := video24(t, dir, "1")
	out := filepath.Join(dir, "e.jsonl")
	je := plugin.JobEnv{
		Config: packet.NewMap(0), GraphDir: filepath.Join(root, "configs", "graphs"),
		Args:   plugin.JobArgs{Video: clip, OutputJSONL: out, MaxEvents: 3},
		Getenv: envOf(map[string]string{"AI_MODEL_MODE": "mock", "AI_ZONES_SOURCE": "none"}),
	}
	if err := (&Job{}).Run(context.Background(), je); err != nil {
		t.Fatal(err)
	}
	evs := readJSONL(t, out)
	if len(evs) != 3 {
		t.Fatalf("%d lines", len(evs))
	}
	for _, k := range []string{"event_id", "ts", "site_id", "camera_id", "event_type", "bbox", "zone"} {
		if _, ok := evs[0][k]; !ok {
			t.Errorf("key %s missing", k)
		}
	}
	// zones.source none keeps the builder's zone.
	if z, _ := json.Marshal(evs[0]["zone"]); string(z) != `{"inside":false,"zone_id":"Z0"}` {
		t.Errorf("zone %s", z)
	}
	_, logs, err := runJob(t, root, plugin.JobArgs{Video: clip, DryRun: true, MaxEvents: 2},
		map[string]string{"AI_MODEL_MODE": "mock", "AI_ZONES_SOURCE": "none"})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "DRY_RUN event="); n != 2 {
		t.Fatalf("%d DRY_RUN lines:\n%s", n, logs)
	}
}

func TestStartupErrors(t *testing.T) {
	api, _ := zoneAPIDown(t)
	root := projectWithConfigs(t, api.URL)
	cases := []struct {
		name string
		args plugin.JobArgs
		env  map[string]string
		want string
	}{
		{"real mode with a Python adapter", plugin.JobArgs{DryRun: true}, nil, "is a Python class, which schnitzel cannot load"},
		{"video with rtsp", plugin.JobArgs{Video: "x.mp4", SourceType: "rtsp"}, nil, "--video cannot be combined"},
		{"missing video", plugin.JobArgs{Video: filepath.Join(root, "none.mp4"), DryRun: true}, map[string]string{"AI_MODEL_MODE": "mock"}, "video file not found"},
		{"no sample video", plugin.JobArgs{DryRun: true}, map[string]string{"AI_MODEL_MODE": "mock"}, "no mp4 files under"},
		{"unknown camera", plugin.JobArgs{CameraID: "camX"}, map[string]string{"AI_MODEL_MODE": "mock"}, "camera_id not found: camX"},
		{"plugin source", plugin.JobArgs{SourceType: "plugin", DryRun: true}, map[string]string{"AI_MODEL_MODE": "mock"}, "plugin sources"},
		{"bad env model mode", plugin.JobArgs{}, map[string]string{"AI_MODEL_MODE": "fake"}, "model.mode must be"},
		{"emitter adapter", plugin.JobArgs{SourceType: "rtsp"}, map[string]string{"AI_MODEL_MODE": "mock", "AI_EVENTS_EMITTER_ADAPTER": "x.y:Z"}, "emitter plugins are not supported"},
		{"bad post url", plugin.JobArgs{SourceType: "rtsp"}, map[string]string{"AI_MODEL_MODE": "mock", "AI_EVENTS_POST_URL": "backend/api"}, "events.post_url"},
	}
	for _, c := range cases {
		_, _, err := runJob(t, root, c.args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

func TestBackendEmitter(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key")+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/bad"):
			w.WriteHeader(http.StatusBadRequest)
		case i < 3:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer srv.Close()
	log := slog.New(slog.DiscardHandler)
	ev := packet.MapOf("event_id", "e-1", "camera_id", "cam01")

	e, err := newBackendEmitter(eventsSettings{PostURL: srv.URL + "/api/events", TimeoutSec: 1, RetryMaxAttempts: 5, RetryBackoffSec: 0.001}, log)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Emit(context.Background(), ev) {
		t.Fatal("emit refused")
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.ok.Load() != 1 || n.Load() != 3 {
		t.Fatalf("5xx twice then 202: ok %d after %d calls", e.ok.Load(), n.Load())
	}
	if keys[0] != "e-1 application/json" {
		t.Fatalf("headers %q", keys[0])
	}

	n.Store(10)
	bad, _ := newBackendEmitter(eventsSettings{PostURL: srv.URL + "/bad", TimeoutSec: 1, RetryMaxAttempts: 5}, log)
	bad.Emit(context.Background(), ev)
	bad.Close(context.Background())
	if bad.failed.Load() != 1 || n.Load() != 11 {
		t.Fatalf("4xx: failed %d after %d calls (want one call)", bad.failed.Load(), n.Load()-10)
	}
}

// TestBuildSourceChecksTypedConfig: the job builds its sources through the
// video pack's typed constructors, which check the config as a graph's
// decode does, so a bad setting fails with the node's own message.
func TestBuildSourceChecksTypedConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name string
		s    settings
		want string
	}{
		{"rtsp transport", settings{CameraID: "cam01", FPSLimit: 5, Source: sourceSettings{Type: "rtsp", URL: "rtsp://h/1"},
			RTSP: rtspSettings{TimeoutSec: 1, BaseDelaySec: 1, MaxDelaySec: 2, Transport: "quic"}},
			`rtsp source: config.transport: must be one of tcp, udp, got "quic"`},
		{"rtsp negative attempts", settings{CameraID: "cam01", Source: sourceSettings{Type: "rtsp", URL: "rtsp://h/1"},
			RTSP: rtspSettings{TimeoutSec: 1, BaseDelaySec: 1, MaxDelaySec: 2, MaxAttempts: -1, Transport: "tcp"}},
			"rtsp source: config.reconnect_max_attempts: must be >= 0"},
		{"webcam negative index", settings{CameraID: "web", Source: sourceSettings{Type: "webcam", Index: new(int64(-2))}},
			"webcam source: config.camera_index: must be >= 0, got -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, _, err := buildSource(&tc.s, plugin.JobArgs{}, t.TempDir(), log)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("buildSource = %v, %v; want an error with %q", n, err, tc.want)
			}
		})
	}
	// a good config builds, with the camera id as its source_id
	ok := settings{CameraID: "cam01", FPSLimit: 5, Source: sourceSettings{Type: "rtsp", URL: "rtsp://h/1"},
		RTSP: rtspSettings{TimeoutSec: 1, BaseDelaySec: 1, MaxDelaySec: 2, Transport: "udp"}}
	n, fps, err := buildSource(&ok, plugin.JobArgs{}, t.TempDir(), log)
	if err != nil || n == nil || fps != 0 {
		t.Fatalf("buildSource = %v, %v, %v; want a source and fps 0", n, fps, err)
	}
}
