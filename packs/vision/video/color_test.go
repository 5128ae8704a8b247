package video

import (
	"os/exec"
	"testing"
)

// Frames travel as yuv420p and become BGR in-process; the result must
// match what ffmpeg itself produces for -pix_fmt bgr24 (upstream's pixels,
// via OpenCV's swscale) to within rounding, for SD (BT.601), HD-tagged
// (BT.709) and full-range (JPEG) sources, odd sizes included.
func TestBGRMatchesFFmpeg(t *testing.T) {
	cases := []struct {
		name, lavfi string
		extra       []string
	}{
		{"bt601.mp4", "testsrc2=size=320x240:rate=24:duration=1", []string{"-pix_fmt", "yuv420p"}},
		{"bt709.mp4", "testsrc2=size=320x240:rate=24:duration=1", []string{"-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"}},
		{"full.avi", "testsrc2=size=320x240:rate=24:duration=1", []string{"-c:v", "mjpeg", "-pix_fmt", "yuvj420p"}},
		{"odd.avi", "testsrc2=size=161x91:rate=24:duration=1", []string{"-c:v", "mjpeg", "-pix_fmt", "yuvj420p"}},
		// 4:4:4 would lose chroma in yuv420p: it travels as bgr24.
		{"yuv444.mp4", "testsrc2=size=160x90:rate=24:duration=1", []string{"-pix_fmt", "yuv444p", "-c:v", "libx264", "-profile:v", "high444"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := makeVideo(t, t.TempDir(), tc.name, tc.lavfi, tc.extra...)
			_, pkts := runFile(t, cfgOf("path", path, "source_id", "cam01", "max_frames", 3), 0)
			if len(pkts) != 3 {
				t.Fatalf("got %d frames, want 3", len(pkts))
			}
			want, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", path,
				"-frames:v", "3", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1").Output()
			if err != nil {
				t.Fatalf("ffmpeg bgr24: %v", err)
			}
			f0 := frameOf(t, pkts[0])
			if wantFmt := map[bool]string{true: "bgr24", false: "yuv420p"}[tc.name == "yuv444.mp4"]; f0.PixFmt != wantFmt {
				t.Errorf("transport format %s, want %s", f0.PixFmt, wantFmt)
			}
			size := 3 * f0.Width * f0.Height
			if len(want) != 3*size {
				t.Fatalf("ffmpeg gave %d bytes, want %d", len(want), 3*size)
			}
			for i, p := range pkts {
				got := frameOf(t, p).BGR()
				ref := want[i*size : (i+1)*size]
				maxd, sum := 0, 0
				for j := range ref {
					d := int(got[j]) - int(ref[j])
					if d < 0 {
						d = -d
					}
					sum += d
					maxd = max(maxd, d)
				}
				// Fixed-point rounding differs from swscale's by a few
				// units at most (measured: max 3, mean under 0.7).
				mean := float64(sum) / float64(size)
				if i == 0 {
					t.Logf("%s %+v: max diff %d, mean %.3f", frameOf(t, p).PixFmt, frameOf(t, p).Color, maxd, mean)
				}
				if maxd > 4 || mean > 1.0 {
					t.Errorf("frame %d (%s %+v): max diff %d, mean %.2f vs ffmpeg's bgr24", i, frameOf(t, p).PixFmt, frameOf(t, p).Color, maxd, mean)
				}
			}
		})
	}
}
