package legacy_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/cli"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packs/vision/legacy"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// TestLegacyGraphThroughCLI runs the seed's v1 graph with the CLI's legacy
// flags, as `schnitzel --graph configs/graphs/legacy_pipeline.yaml ...`.
func TestLegacyGraphThroughCLI(t *testing.T) {
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not in PATH", b)
		}
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer api.Close()
	root := t.TempDir()
	write := func(rel string, b []byte) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"default.yaml", "cameras.yaml", "dev.yaml", "prod.yaml", "graphs/legacy_pipeline.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", n))
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join("configs", n), bytes.ReplaceAll(b, []byte("http://backend:8080"), []byte(api.URL)))
	}
	clip := filepath.Join(root, "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
		"-i", "testsrc=s=64x48:r=30:d=1", "-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	reg := plugin.NewRegistry()
	dev.Register(reg)
	legacy.Register(reg)
	env := map[string]string{"AI_MODEL_MODE": "mock", "SCHNITZEL_STREAM_SILENCE_LEGACY_WARNING": "1"}
	var stdout, stderr bytes.Buffer
	app := &cli.App{Stdout: &stdout, Stderr: &stderr, Registry: reg,
		Getenv:    func(k string) string { return env[k] },
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	out := filepath.Join(root, "outputs", "events.jsonl")
	code := app.Run([]string{"--graph", filepath.Join(root, "configs", "graphs", "legacy_pipeline.yaml"),
		"--video", clip, "--output-jsonl", out, "--max-events", "4", "--report-json"})
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var tracks []string
	for _, l := range lines {
		var ev struct {
			TrackID json.Number `json:"track_id"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, ev.TrackID.String())
	}
	// 30 fps, fps_limit 10: every third frame.
	if got := strings.Join(tracks, ","); got != "0,3,6,9" {
		t.Fatalf("tracks %s", got)
	}
	var rep struct {
		Status  string           `json:"status"`
		Metrics map[string]int64 `json:"metrics"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &rep); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if rep.Status != "ok" || rep.Metrics["events_total"] != 4 || rep.Metrics["frames_total"] != 10 {
		t.Fatalf("report %+v", rep)
	}
}
