package video

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// No camera on CI: these tests cover what must hold without one.

func TestWebcamMissingDevice(t *testing.T) {
	needFFmpeg(t)
	n, logs := build(t, webcamName, cfgOf("camera_index", 99, "source_id", "door",
		"reconnect_backoff_sec", 0.05, "reconnect_backoff_max_sec", 0.1, "reconnect_max_attempts", 3))
	_, done := runSource(t, n, newRecorder(0))
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("webcam source did not give up")
	}
	if err == nil {
		t.Fatal("no error for a missing device")
	}
	for _, w := range []string{"webcam door", "/dev/video99 not found", "after 3 attempts"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if metric(n, "open_failures_total") != 3 || metric(n, "reconnect_total") != 2 {
		t.Errorf("open_failures_total %d reconnect_total %d", metric(n, "open_failures_total"), metric(n, "reconnect_total"))
	}
	if !strings.Contains(logs.String(), "camera=door") {
		t.Errorf("logs do not name the camera:\n%s", logs)
	}
}

// TestWebcamNotACamera: a device path that exists but is no V4L2 camera
// fails in ffmpeg; the error carries ffmpeg's reason.
func TestWebcamNotACamera(t *testing.T) {
	needFFmpeg(t)
	fake := filepath.Join(t.TempDir(), "video0")
	if err := os.WriteFile(fake, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n, _ := build(t, webcamName, cfgOf("device", fake, "source_id", "desk", "reconnect", false))
	_, done := runSource(t, n, newRecorder(0))
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "webcam desk: cannot open "+fake) {
		t.Fatalf("err = %v", err)
	}
	noFFmpegChildren(t)
}

func TestWebcamArgs(t *testing.T) {
	d := webcamDevice{index: 2, size: "640x480", fps: 15}
	dir := t.TempDir()
	d.name = filepath.Join(dir, "video2")
	if err := os.WriteFile(d.name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := d.inputArgs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := "-f v4l2 -framerate 15 -video_size 640x480 -i " + d.name
	if got := strings.Join(a, " "); got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	if got := (webcamDevice{index: 3}).describe(); got != "/dev/video3" {
		t.Errorf("describe = %q", got)
	}
}
