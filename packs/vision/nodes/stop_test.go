package nodes_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/cli"
	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/packs/vision/detect/adaptertest"
	"github.com/schnitzel-stream/schnitzel/packs/vision/video"
)

// A detector adapter that takes 0.8 s per frame, 200 frames decoded ahead
// of it: one SIGINT ends the run after --stop-timeout (the adapter call in
// flight is cancelled, the waiting frames abandoned and counted), exit 0
// with the report, instead of draining every frame (160 s).
func TestSlowAdapterStopsWithinStopTimeout(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	mp4 := lavfiClip(t, dir, "long.mp4", "color=c=black:s=160x120:r=25:d=8")
	g := `version: 2
nodes:
  - {id: video, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource,
     config: {path: "` + mp4 + `", source_id: cam01, start_ts: "2026-02-14T00:00:00Z"}}
  - {id: det, kind: node, plugin: ` + adapterN + `,
     config: {command: ` + helperCommand() + `, env: {` + adaptertest.EnvMode + `: "fixed,delay-ms=800"}, input_format: bgr24}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefix: "EV "}}
edges:
  - {from: video, to: det}
  - {from: det, to: out}
`
	gf := filepath.Join(dir, "g.yaml")
	if err := os.WriteFile(gf, []byte(g), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := registry()
	video.Register(reg)
	sigs := make(chan os.Signal, 1)
	stdout, stderr := &logbuf.Buffer{}, &logbuf.Buffer{}
	app := &cli.App{Stdout: stdout, Stderr: stderr, Getenv: func(string) string { return "" },
		LookupEnv: func(string) (string, bool) { return "", false }, Registry: reg,
		Signals: sigs, HardExit: func(code int) { t.Errorf("hard exit %d", code) }}
	exited := make(chan int, 1)
	go func() { exited <- app.Run([]string{"--graph", gf, "--report-json", "--stop-timeout", "300ms"}) }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stdout.String(), "EV ") { // the adapter answered once: frames are queued behind it
		if time.Now().After(deadline) {
			t.Fatalf("no detection: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sigs <- syscall.SIGINT
	var code int
	select {
	case code = <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not stop: the adapter call is not cancelled")
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	ls := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var rep struct {
		Stopped   bool             `json:"stopped_by_signal"`
		Expired   bool             `json:"stop_timeout_expired"`
		Abandoned int64            `json:"abandoned_total"`
		Metrics   map[string]int64 `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Stopped || !rep.Expired || rep.Abandoned == 0 || rep.Metrics["node.det.abandoned_total"] == 0 {
		t.Errorf("report %+v", rep)
	}
	if n := rep.Metrics["node.det.requests_total"]; n >= 200 {
		t.Errorf("the adapter got %d requests: the stop drained every frame", n)
	}
	if rep.Metrics["node.det.timeouts_total"]+rep.Metrics["node.det.adapter_crashes_total"] != 0 {
		t.Errorf("the cancelled call was counted as an adapter failure: %v", rep.Metrics)
	}
}
