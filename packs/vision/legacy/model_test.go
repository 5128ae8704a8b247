package legacy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packs/vision/detect/adaptertest"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// The test binary doubles as the detector adapter (adaptertest modes).
func TestMain(m *testing.M) {
	adaptertest.Main()
	os.Exit(m.Run())
}

func TestParseAdapters(t *testing.T) {
	cases := []struct {
		spec string
		want []adapterSpec
		err  string
	}{
		{spec: "cmd:python3 adapter.py --weights 'my model.pt'", want: []adapterSpec{{command: []string{"python3", "adapter.py", "--weights", "my model.pt"}}}},
		{spec: "http://127.0.0.1:9000/detect", want: []adapterSpec{{url: "http://127.0.0.1:9000/detect"}}},
		{spec: "cmd:a --classes 0,2, https://h/d", want: []adapterSpec{{command: []string{"a", "--classes", "0,2"}}, {url: "https://h/d"}}},
		{spec: "cmd:a, cmd:b", want: []adapterSpec{{command: []string{"a"}}, {command: []string{"b"}}}},
		{spec: "", err: "needs model.adapter"},
		{spec: " , ", err: "needs model.adapter"},
		{spec: "cmd:", err: "cmd: needs a program"},
		{spec: "cmd:a 'unclosed", err: "model.adapter"},
		{spec: "ai.vision.adapters.custom_adapter:CustomModelAdapter", err: "is a Python class"},
		{spec: "cmd:a,ai.x:Y", want: []adapterSpec{{command: []string{"a,ai.x:Y"}}}}, // a comma inside a command line
		{spec: "http://h/d,ai.x:Y", err: `"ai.x:Y" is a Python class`},
	}
	for _, c := range cases {
		got, err := parseAdapters(c.spec)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%q: %d adapters, want %d", c.spec, len(got), len(c.want))
			continue
		}
		for i := range got {
			if !slices.Equal(got[i].command, c.want[i].command) || got[i].url != c.want[i].url {
				t.Errorf("%q: adapter %d = %+v, want %+v", c.spec, i, got[i], c.want[i])
			}
		}
	}
}

// realRun runs the job in model.mode real on a 1 s 24 fps clip (10 frames
// sampled at fps_limit 10) with the given adapter spec and environment.
func realRun(t *testing.T, adapter string, env map[string]string, maxEvents int) ([]map[string]any, map[string]int64, string, error) {
	t.Helper()
	api, _ := zoneAPIDown(t)
	root := projectWithConfigs(t, api.URL)
	dir := t.TempDir()
	clip := video24(t, dir, "1")
	out := filepath.Join(dir, "events.jsonl")
	e := map[string]string{"AI_MODEL_MODE": "real", "AI_MODEL_ADAPTER": adapter, "AI_ZONES_SOURCE": "none"}
	for k, v := range env {
		e[k] = v
	}
	metrics, logs, err := runJob(t, root, plugin.JobArgs{Video: clip, OutputJSONL: out, MaxEvents: maxEvents}, e)
	var evs []map[string]any
	if _, serr := os.Stat(out); serr == nil {
		evs = readJSONL(t, out)
	}
	return evs, metrics, logs.String(), err
}

func trackIDs(evs []map[string]any) []int64 {
	var ids []int64
	for _, e := range evs {
		f, _ := e["track_id"].(float64)
		ids = append(ids, int64(f))
	}
	return ids
}

// TestRealModeThroughAdapter: the events are upstream's real-mode events
// built from the adapter's detections (class 0 → ZONE_INTRUSION/PERSON/LOW,
// the default class map), track ids from a counter without a tracker and
// from the IoU tracker with TRACKER_TYPE=iou.
func TestRealModeThroughAdapter(t *testing.T) {
	t.Setenv(adaptertest.EnvMode, "fixed") // the adapter process inherits it
	self := "cmd:" + os.Args[0]
	evs, metrics, logs, err := realRun(t, self, nil, 3)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs)
	}
	if len(evs) != 3 || metrics["events_total"] != 3 {
		t.Fatalf("%d events (metric %d), want 3\n%s", len(evs), metrics["events_total"], logs)
	}
	keys := []string{"event_id", "ts", "site_id", "camera_id", "event_type", "object_type", "severity", "track_id", "bbox", "confidence", "zone", "snapshot_path"}
	for i, e := range evs {
		for _, k := range keys {
			if _, ok := e[k]; !ok {
				t.Fatalf("event %d has no %s: %v", i, k, e)
			}
		}
		b, _ := json.Marshal(e["bbox"])
		if e["event_type"] != "ZONE_INTRUSION" || e["object_type"] != "PERSON" || e["severity"] != "LOW" ||
			string(b) != `{"x1":10,"x2":30,"y1":20,"y2":40}` || e["camera_id"] != "cam03" || !seoulTS.MatchString(e["ts"].(string)) {
			t.Errorf("event %d: %v", i, e)
		}
		if z, _ := json.Marshal(e["zone"]); string(z) != `{"inside":false,"zone_id":""}` {
			t.Errorf("event %d zone %s (upstream's scaffold)", i, z)
		}
	}
	if ids := trackIDs(evs); !slices.Equal(ids, []int64{0, 1, 2}) {
		t.Errorf("track ids without a tracker %v, want 0 1 2 (a new id per detection, as upstream's adapters)", ids)
	}

	evs, _, logs, err = realRun(t, self, map[string]string{"TRACKER_TYPE": "iou"}, 0)
	if err != nil {
		t.Fatalf("run with tracker: %v\n%s", err, logs)
	}
	if len(evs) != 10 {
		t.Fatalf("%d events with the IoU tracker, want 10 (one per sampled frame)\n%s", len(evs), logs)
	}
	for _, id := range trackIDs(evs) {
		if id != 0 {
			t.Fatalf("track ids with the IoU tracker %v, want all 0 (the same box every frame)", trackIDs(evs))
		}
	}
}

// TestRealModeComposite: two adapters; the second fails frame 0 and is
// skipped for that frame only, the first's detections still go out.
func TestRealModeComposite(t *testing.T) {
	if _, err := os.Stat("/usr/bin/env"); err != nil {
		t.Skip("needs /usr/bin/env to give each adapter its own mode")
	}
	a := "cmd:/usr/bin/env " + adaptertest.EnvMode + "=fixed " + os.Args[0]
	b := "cmd:/usr/bin/env " + adaptertest.EnvMode + "=fixed,error-on=0 " + os.Args[0]
	evs, _, logs, err := realRun(t, a+", "+b, nil, 5)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs)
	}
	// frame 0: a's track 0 only; frame 1: a's 1, b's 0; frame 2: a's 2, b's 1
	if ids := trackIDs(evs); !slices.Equal(ids, []int64{0, 1, 0, 2, 1}) {
		t.Errorf("track ids %v, want 0 1 0 2 1", ids)
	}
	if !strings.Contains(logs, "model adapter failed a frame") || !strings.Contains(logs, "error-on=0") {
		t.Errorf("the skipped frame is not logged with its adapter:\n%s", logs)
	}
}

// TestRealModeAdapterErrors: an adapter that cannot start fails the run
// before any frame, naming the adapter; one that crashes for good ends it.
func TestRealModeAdapterErrors(t *testing.T) {
	_, _, _, err := realRun(t, "cmd:/nonexistent/adapter --x", nil, 0)
	if err == nil || !strings.Contains(err.Error(), `model adapter "cmd:/nonexistent/adapter --x"`) {
		t.Errorf("missing program: err %v", err)
	}
	t.Setenv(adaptertest.EnvMode, "fixed,crash-after=0")
	_, _, logs, err := realRun(t, "cmd:"+os.Args[0], map[string]string{"AI_MODEL_ADAPTER_MAX_RESTARTS": "1"}, 0)
	if err == nil || !strings.Contains(err.Error(), "model adapter") {
		t.Errorf("crashing adapter: err %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "restart") {
		t.Errorf("the adapter was not restarted before the run ended:\n%s", logs)
	}
	for _, c := range []struct{ env, value, want string }{
		{"AI_MODEL_ADAPTER_TIMEOUT_SEC", "soon", `AI_MODEL_ADAPTER_TIMEOUT_SEC="soon": not a number`},
		{"AI_MODEL_ADAPTER_TIMEOUT_SEC", "-1", "AI_MODEL_ADAPTER_TIMEOUT_SEC (config.timeout_sec): must be > 0"},
		{"TRACKER_IOU", "3", "TRACKER_IOU (config.tracker_iou): must be between 0 and 1"},
		{"TRACKER_MAX_AGE", "1.5", `TRACKER_MAX_AGE="1.5": not an integer`},
	} {
		_, _, _, err = realRun(t, "cmd:"+os.Args[0], map[string]string{c.env: c.value}, 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%s: err %v, want %q", c.env, c.value, err, c.want)
		}
	}
}
