package video

import (
	"github.com/schnitzel-stream/schnitzel/packs/vision/ffmpeg"

	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const fileSrc = "schnitzel_stream.nodes.video:OpenCvVideoFileSource"

func frameOf(t testing.TB, p *packet.Packet) *frame.Frame {
	t.Helper()
	m, ok := p.Payload.(*packet.Map)
	if !ok {
		t.Fatalf("payload %T, want *packet.Map", p.Payload)
	}
	v, _ := m.Get("frame")
	f, ok := v.(*frame.Frame)
	if !ok {
		t.Fatalf("payload.frame %T", v)
	}
	return f
}

func runFile(t *testing.T, cfg *packet.Map, max int) (any, []*packet.Packet) {
	t.Helper()
	n, _ := build(t, fileSrc, cfg)
	if err := n.(plugin.Starter).Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	rec := newRecorder(max)
	if err := n.(plugin.Source).Run(context.Background(), rec); err != nil {
		t.Fatalf("run: %v", err)
	}
	noFFmpegChildren(t)
	return n, rec.packets()
}

func TestFileSourceTestsrc(t *testing.T) {
	dir := t.TempDir()
	path := makeVideo(t, dir, "testsrc.mp4", "testsrc=size=320x240:rate=24", "-t", "2", "-pix_fmt", "yuv420p")
	n, pkts := runFile(t, cfgOf("path", path, "source_id", "cam01", "start_ts", "2026-02-14T00:00:00Z"), 0)
	if len(pkts) != 48 {
		t.Fatalf("got %d frames, want 48 (2 s at 24 fps)", len(pkts))
	}
	for i, p := range pkts {
		f := frameOf(t, p)
		if f.Width != 320 || f.Height != 240 || f.Stride != 960 || len(f.Raw()) != 320*240*3/2 || f.PixFmt != "yuv420p" || len(f.BGR()) != 960*240 {
			t.Fatalf("frame %d: %dx%d stride %d len %d %s", i, f.Width, f.Height, f.Stride, len(f.Raw()), f.PixFmt)
		}
		if p.Kind != "frame" || p.SourceID != "cam01" || f.Index != int64(i) {
			t.Fatalf("packet %d: kind %q source %q index %d", i, p.Kind, p.SourceID, f.Index)
		}
		idx, _ := p.Payload.(*packet.Map).Get("frame_idx")
		if idx != int64(i) {
			t.Fatalf("payload.frame_idx = %v, want %d", idx, i)
		}
	}
	// Upstream's meta and ts rule: ts = start_ts + position (µs, half even).
	wantMeta := []string{
		`{"frame_idx": 0, "pos_msec": 0, "idempotency_key": "frame:cam01:0"}`,
		`{"frame_idx": 1, "pos_msec": 41, "idempotency_key": "frame:cam01:1"}`,
	}
	wantTS := []string{"2026-02-14T00:00:00+00:00", "2026-02-14T00:00:00.041667+00:00"}
	for i := range wantMeta {
		if got := string(packet.AppendJSON(nil, pkts[i].Meta, packet.Spaced)); got != wantMeta[i] {
			t.Errorf("meta[%d] = %s, want %s", i, got, wantMeta[i])
		}
		if pkts[i].TS != wantTS[i] {
			t.Errorf("ts[%d] = %s, want %s", i, pkts[i].TS, wantTS[i])
		}
	}
	if got, want := pkts[47].TS, "2026-02-14T00:00:01.958333+00:00"; got != want {
		t.Errorf("last ts = %s, want %s", got, want)
	}
	if f := frameOf(t, pkts[47]); f.PTS < 1.958 || f.PTS > 1.959 {
		t.Errorf("last PTS = %v", f.PTS)
	}
	// testsrc frames differ from each other (moving pattern and counter).
	if string(frameOf(t, pkts[0]).Raw()) == string(frameOf(t, pkts[1]).Raw()) {
		t.Error("frames 0 and 1 have identical pixels")
	}
	if got := string(packet.AppendJSON(nil, pkts[3].Payload, packet.Spaced)); got != `{"frame": "<frame 320x240 yuv420p #3>", "frame_idx": 3}` {
		t.Errorf("payload JSON = %s", got)
	}
	if metric(n, "emitted_total") != 48 || metric(n, "decoded_total") != 48 {
		t.Errorf("metrics %v", n.(plugin.Metrics).Metrics())
	}
}

func TestFileSourceColours(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, colour string
		extra        []string
		b, g, r, tol int
	}{
		// Lossless RGB storage: exact bytes.
		{"red_png", "red", []string{"-c:v", "png", "-pix_fmt", "rgb24"}, 0, 0, 255, 0},
		{"mixed_png", "0x336699", []string{"-c:v", "png", "-pix_fmt", "rgb24"}, 0x99, 0x66, 0x33, 0},
		// H.264 4:2:0 goes through YUV: within a few levels.
		{"red_h264", "red", []string{"-c:v", "libx264", "-pix_fmt", "yuv420p", "-qp", "0"}, 0, 0, 255, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ext := ".mkv"
			// format=rgb24 makes lavfi draw the colour in RGB (its default
			// YUV source would round red to 253 before we ever decode).
			path := makeVideo(t, dir, c.name+ext, "color=c="+c.colour+":size=64x48:rate=10,format=rgb24", append([]string{"-t", "0.5"}, c.extra...)...)
			_, pkts := runFile(t, cfgOf("path", path), 0)
			if len(pkts) != 5 {
				t.Fatalf("got %d frames, want 5", len(pkts))
			}
			for _, p := range pkts {
				f := frameOf(t, p)
				for _, xy := range [][2]int{{0, 0}, {63, 47}, {32, 24}} {
					b, g, r := f.At(xy[0], xy[1])
					if abs(int(b)-c.b) > c.tol || abs(int(g)-c.g) > c.tol || abs(int(r)-c.r) > c.tol {
						t.Fatalf("frame %d pixel %v = bgr(%d,%d,%d), want (%d,%d,%d)±%d", f.Index, xy, b, g, r, c.b, c.g, c.r, c.tol)
					}
				}
			}
		})
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestFileSourceMaxFramesAndStop(t *testing.T) {
	dir := t.TempDir()
	path := makeVideo(t, dir, "clip.mp4", "testsrc=size=160x120:rate=24", "-t", "2")
	t.Run("max_frames", func(t *testing.T) {
		_, pkts := runFile(t, cfgOf("path", path, "max_frames", 5), 0)
		if len(pkts) != 5 {
			t.Fatalf("got %d, want 5", len(pkts))
		}
	})
	t.Run("downstream_stop", func(t *testing.T) {
		// ErrStop from Emit (--max-events) ends the run cleanly.
		_, pkts := runFile(t, cfgOf("path", path), 3)
		if len(pkts) != 3 {
			t.Fatalf("got %d, want 3", len(pkts))
		}
	})
	t.Run("fps_resample", func(t *testing.T) {
		_, pkts := runFile(t, cfgOf("path", path, "fps", 6), 0)
		if len(pkts) < 11 || len(pkts) > 13 {
			t.Fatalf("got %d frames at fps 6 over 2 s, want about 12", len(pkts))
		}
	})
}

func TestFileSourceLoop(t *testing.T) {
	dir := t.TempDir()
	path := makeVideo(t, dir, "short.mp4", "testsrc=size=160x120:rate=24", "-t", "0.5") // 12 frames
	n, pkts := runFile(t, cfgOf("path", path, "loop", "true", "max_frames", 30, "start_ts", "2026-02-14T00:00:00"), 0)
	if len(pkts) != 30 {
		t.Fatalf("got %d, want 30", len(pkts))
	}
	var prev time.Time
	for i, p := range pkts {
		f := frameOf(t, p)
		if f.Index != int64(i) {
			t.Fatalf("frame %d has index %d", i, f.Index)
		}
		key, _ := p.Meta.Get("idempotency_key")
		if key != fmt.Sprintf("frame:src:%d", i) {
			t.Fatalf("key %v", key)
		}
		ts, err := time.Parse(time.RFC3339Nano, p.TS)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !ts.After(prev) {
			t.Fatalf("ts went back at frame %d: %s after %s", i, p.TS, prev)
		}
		prev = ts
	}
	// pos_msec is the position in the file: it restarts with each pass.
	if pos, _ := pkts[12].Meta.Get("pos_msec"); pos != int64(0) {
		t.Errorf("pos_msec of frame 12 (second pass) = %v, want 0", pos)
	}
	if pkts[12].TS != "2026-02-14T00:00:00.500000+00:00" {
		t.Errorf("ts of frame 12 = %s, want start + 0.5 s", pkts[12].TS)
	}
	if metric(n, "passes_total") != 3 {
		t.Errorf("passes_total = %d, want 3", metric(n, "passes_total"))
	}
}

func TestFileSourceErrors(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(text, []byte("this is not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	audio := makeVideo(t, dir, "tone.wav", "sine=frequency=440", "-t", "0.2")
	unreadable := filepath.Join(dir, "secret.mp4")
	if err := os.WriteFile(unreadable, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		want       []string
	}{
		{"missing", filepath.Join(dir, "nope.mp4"), []string{"video file not found", "nope.mp4"}},
		{"directory", dir, []string{"is a directory"}},
		{"not_a_video", text, []string{"notes.mp4", "not a readable video", "Invalid data"}},
		{"audio_only", audio, []string{"tone.wav", "no video stream"}},
	}
	if os.Geteuid() != 0 { // root reads anything
		cases = append(cases, struct {
			name, path string
			want       []string
		}{"unreadable", unreadable, []string{"secret.mp4", "not readable"}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, _ := build(t, fileSrc, cfgOf("path", c.path))
			err := n.(plugin.Starter).Start(context.Background())
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("ffmpeg_missing", func(t *testing.T) {
		path := makeVideo(t, dir, "ok.mp4", "testsrc=size=64x48:rate=5", "-t", "0.4")
		t.Setenv("PATH", t.TempDir())
		n, _ := build(t, fileSrc, cfgOf("path", path))
		err := n.(plugin.Starter).Start(context.Background())
		if !errors.Is(err, ffmpeg.ErrFFmpegNotFound) || err.Error() != "camera src: ffmpeg not found in PATH (install ffmpeg)" {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFileSourceRelativePathFromWorkingDir(t *testing.T) {
	dir := t.TempDir()
	makeVideo(t, dir, "rel.mp4", "testsrc=size=64x48:rate=5", "-t", "0.4")
	t.Chdir(dir)
	_, pkts := runFile(t, cfgOf("path", "rel.mp4"), 0)
	if len(pkts) != 2 {
		t.Fatalf("got %d frames, want 2", len(pkts))
	}
}

func TestFileSourceCancelReaps(t *testing.T) {
	dir := t.TempDir()
	path := makeVideo(t, dir, "long.mp4", "testsrc=size=160x120:rate=24", "-t", "4")
	n, _ := build(t, fileSrc, cfgOf("path", path, "realtime", true))
	rec := newRecorder(0)
	stop, _ := runSource(t, n, rec)
	rec.waitFor(t, 10*time.Second, "3 frames", func(p []*packet.Packet) bool { return len(p) >= 3 })
	if len(ffmpegChildren(t)) != 1 {
		t.Errorf("want one running ffmpeg, have %v", ffmpegChildren(t))
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
	// Realtime pacing: 4 s of video must not have been read in a flash.
	if got := len(rec.packets()); got > 40 {
		t.Errorf("%d frames emitted before cancel with realtime pacing", got)
	}
	noFFmpegChildren(t)
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		plugin string
		cfg    *packet.Map
		want   string
	}{
		{fileSrc, cfgOf(), "config.path: required key is missing"},
		{fileSrc, cfgOf("path", "  "), "config.path: must name a video file"},
		{fileSrc, cfgOf("path", "a.mp4", "max_frames", -1), "config.max_frames: must be >= 0"},
		{fileSrc, cfgOf("path", "a.mp4", "start_ts", "yesterday"), "config.start_ts: not an ISO-8601 timestamp"},
		{fileSrc, cfgOf("path", "a.mp4", "fps", -2.0), "config.fps"},
		{fileSrc, cfgOf("path", "a.mp4", "loop", "maybe"), "config.loop: expected a boolean"},
		{rtspName, cfgOf(), "config.url: required key is missing"},
		{rtspName, cfgOf("url", "rtsp://x/y", "transport", "sctp"), "config.transport: must be one of tcp, udp"},
		{rtspName, cfgOf("url", "rtsp://x/y", "reconnect_max_attempts", -1), "config.reconnect_max_attempts"},
		{rtspName, cfgOf("url", "rtsp://x/y", "read_timeout_sec", 0), "config.read_timeout_sec: must be > 0"},
		{webcamName, cfgOf("camera_index", -1), "config.camera_index: must be >= 0"},
		{webcamName, cfgOf("reconnect_backoff_sec", -1), "config.reconnect_backoff_sec"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			_, _, err := tryBuild(c.plugin, c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	// Upstream spellings resolve, and start_ts forms upstream accepts parse.
	for _, name := range []string{fileSrc, "schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource",
		"schnitzel_stream.packs.vision.nodes.video:OpenCvVideoFileSource"} {
		for _, ts := range []string{"2026-02-14T00:00:00Z", "2026-02-14T09:00:00+09:00", "2026-02-14 00:00:00.5", "2026-02-14"} {
			if _, _, err := tryBuild(name, cfgOf("path", "x.mp4", "start_ts", ts)); err != nil {
				t.Errorf("%s start_ts %q: %v", name, ts, err)
			}
		}
	}
}

func TestParseISO(t *testing.T) {
	cases := map[string]string{
		"2026-02-14T00:00:00Z":             "2026-02-14T00:00:00+00:00",
		"2026-02-14T09:00:00+09:00":        "2026-02-14T00:00:00+00:00",
		"2026-02-14T00:00:00":              "2026-02-14T00:00:00+00:00", // naive = UTC
		"2026-02-14 00:00:01.250000":       "2026-02-14T00:00:01.250000+00:00",
		"2026-02-14":                       "2026-02-14T00:00:00+00:00",
		"2026-02-14T00:00:00.123456-01:00": "2026-02-14T01:00:00.123456+00:00",
	}
	for in, want := range cases {
		got, err := parseISO(in)
		if err != nil || packet.FormatTS(got) != want {
			t.Errorf("parseISO(%q) = %s, %v; want %s", in, packet.FormatTS(got), err, want)
		}
	}
	for _, bad := range []string{"", "now", "2026-13-01"} {
		if _, err := parseISO(bad); err == nil {
			t.Errorf("parseISO(%q) succeeded", bad)
		}
	}
}

// TestFileSourceTruncated: a file cut short decodes up to the damage, ends
// without error, and the log says frames were lost.
func TestFileSourceTruncated(t *testing.T) {
	dir := t.TempDir()
	path := makeVideo(t, dir, "full.mp4", "testsrc=size=320x240:rate=24", "-t", "2", "-movflags", "+faststart")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.mp4")
	if err := os.WriteFile(cut, b[:len(b)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	n, logs := build(t, fileSrc, cfgOf("path", cut))
	if err := n.(plugin.Starter).Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	rec := newRecorder(0)
	if err := n.(plugin.Source).Run(context.Background(), rec); err != nil {
		t.Fatalf("run: %v", err)
	}
	got := len(rec.packets())
	if got == 0 || got >= 48 {
		t.Fatalf("got %d frames from a file cut to 2/3, want some but not all 48", got)
	}
	if !strings.Contains(logs.String(), "ffmpeg reported decode errors") {
		t.Errorf("no warning about the damage:\n%s", logs)
	}
	noFFmpegChildren(t)
}
