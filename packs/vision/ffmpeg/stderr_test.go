package ffmpeg

import (
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/redact"
)

func TestLogState(t *testing.T) {
	// Trimmed from ffmpeg 5.1 with -loglevel level+info and showinfo.
	log := `[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 't.mp4':
[info]   Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 1920x1080 [SAR 1:1 DAR 16:9], 43 kb/s, 24 fps, 24 tbr, 12288 tbn (default)
[Parsed_showinfo_0 @ 0x55af3defe000] [info] config in time_base: 1/12288, frame_rate: 24/1
[Parsed_showinfo_0 @ 0x55af3defe000] [info] n:   0 pts:      0 pts_time:0       pos:       48 fmt:yuv420p sar:1/1 s:320x240 i:P iskey:1 type:I
[Parsed_showinfo_0 @ 0x55af3defe000] [info] color_range:unknown color_space:unknown
[info] Output #0, rawvideo, to 'pipe:':
[info]   Stream #0:0(und): Video: rawvideo (BGR[24] / 0x18524742), bgr24(pc, gbr/unknown/unknown, progressive), 320x240 [SAR 1:1 DAR 4:3], q=2-31, 44236 kb/s, 23.98 fps, 24 tbn (default)
[Parsed_showinfo_0 @ 0x55af3defe000] [info] n:   1 pts:    512 pts_time:0.0416667 pos:     1234 fmt:yuv420p sar:1/1 s:320x240 i:P iskey:0 type:P
[Parsed_showinfo_0 @ 0x55af3defe000] [info] n:   2 pts:NOPTS pts_time:NOPTS
[h264 @ 0x1] [warning] co located POCs unavailable
[tcp @ 0x2] [error] Connection to tcp://cam:554?timeout=0 failed: Connection refused
[error] rtsp://u:pw@cam:554/x: Connection refused
`
	s := newLogState(redact.Text)
	s.consume(strings.NewReader(log))
	g, n, done, _ := s.snapshot()
	if g == nil || *g != (Geometry{W: 320, H: 240, FPS: 23.98, PixFmt: frame.PixFmtBGR24}) {
		t.Fatalf("Geometry %+v (the output stream's, not the input's)", g)
	}
	if n != 3 || !done {
		t.Fatalf("pts queued %d, done %v", n, done)
	}
	want := []float64{0, 512.0 / 12288}
	for _, w := range want {
		if v, ok := s.popPTS(); !ok || v != w {
			t.Fatalf("pts %v, want %v", v, w)
		}
	}
	if v, ok := s.popPTS(); !ok || !math.IsNaN(v) {
		t.Fatalf("NOPTS frame: %v %v", v, ok)
	}
	if _, ok := s.popPTS(); ok {
		t.Fatal("queue not empty")
	}
	wantCause := "Connection to tcp://cam:554?timeout=0 failed: Connection refused; rtsp://***:***@cam:554/x: Connection refused"
	if got := s.cause(); got != wantCause {
		t.Errorf("cause %q\nwant  %q", got, wantCause)
	}
}

func TestLogStateWarningsOnlyAndHugeLines(t *testing.T) {
	s := newLogState(nil)
	huge := "[Parsed_showinfo_0 @ 0x1] [info] User Data=" + strings.Repeat("ab", 100<<10) + "\n"
	s.consume(strings.NewReader(huge + "[mov @ 0x1] [warning] something odd\n"))
	if got := s.cause(); got != "something odd" {
		t.Errorf("cause %.200q", got)
	}
}

func TestLogStateUntaggedFallback(t *testing.T) {
	s := newLogState(redact.Text)
	s.consume(strings.NewReader("[info] Input #0, lavfi\nUnrecognized option 'fps_mode'.\n[info]   Metadata:\n"))
	if got := s.cause(); got != "Unrecognized option 'fps_mode'." {
		t.Errorf("cause %q", got)
	}
}

func TestParseStreamLine(t *testing.T) {
	bgr, yuv := frame.PixFmtBGR24, frame.PixFmtYUV420P
	cases := map[string]Geometry{
		"  Stream #0:0: Video: rawvideo (BGR[24] / 0x18524742), bgr24, 1280x720, q=2-31, 663552 kb/s, 30 fps, 30 tbn":                                               {1280, 720, 30, bgr, frame.Color{}},
		"  Stream #0:0: Video: rawvideo (BGR[24] / 0x18524742), bgr24(progressive), 640x360 [SAR 1:1 DAR 16:9], 1k fps":                                             {640, 360, 1000, bgr, frame.Color{}},
		"  Stream #0:0: Video: rawvideo, bgr24, 64x48":                                                                                                              {64, 48, 0, bgr, frame.Color{}},
		"  Stream #0:0(und): Video: rawvideo (I420 / 0x30323449), yuv420p(progressive), 1280x720 [SAR 1:1 DAR 16:9], q=2-31, 265420 kb/s, 24 fps, 24 tbn (default)": {1280, 720, 24, yuv, frame.Color{}},
		"  Stream #0:0(und): Video: rawvideo (I420 / 0x30323449), yuv420p(tv, bt709, progressive), 320x240 [SAR 1:1 DAR 4:3], q=2-31, 22118 kb/s, 24 fps, 24 tbn":   {320, 240, 24, yuv, frame.Color{BT709: true}},
		"  Stream #0:0: Video: rawvideo (I420 / 0x30323449), yuv420p(pc, bt470bg/unknown/unknown, progressive), 320x240, 25 fps":                                    {320, 240, 25, yuv, frame.Color{FullRange: true}},
		"  Stream #0:0: Video: rawvideo (I420 / 0x30323449), yuv420p(tv, bt709/bt709/bt709), 1920x1080, 30 fps":                                                     {1920, 1080, 30, yuv, frame.Color{BT709: true}},
	}
	for in, want := range cases {
		if g, ok := parseStreamLine(in); !ok || g != want {
			t.Errorf("parseStreamLine(%q) = %+v %v, want %+v", in, g, ok, want)
		}
	}
	if _, ok := parseStreamLine("Stream #0:0: Video: rawvideo (BGR[24] / 0x18524742)"); ok {
		t.Error("parsed a line without a size")
	}
}

// TestReadFrameWithoutPTS: when ffmpeg's frame-time lines never come, only
// the first frame waits for them; later frames do not pay a timeout each.
func TestReadFrameWithoutPTS(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		w.Write(make([]byte, 3*4*2*3)) // three 4x2 frames
		w.Close()
	}()
	d := &Decoder{stdout: r, log: newLogState(nil)} // log never done, no pts
	pool := frame.NewPool(4, 2)
	start := time.Now()
	for i := 0; i < 3; i++ {
		it, err := d.readFrame(pool.Get())
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !math.IsNaN(it.PTS) {
			t.Fatalf("frame %d pts %v, want NaN (unknown)", i, it.PTS)
		}
	}
	if el := time.Since(start); el > 1900*time.Millisecond {
		t.Errorf("3 frames took %v: each waited for a missing pts line", el)
	}
	if _, err := d.readFrame(pool.Get()); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}
