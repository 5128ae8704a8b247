package video

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func frameRelease(v any) {
	if f, ok := v.(*frame.Frame); ok {
		f.Release()
	}
}

// BenchmarkDecode720p measures the file source end to end (ffmpeg decode,
// pipe, pooled read, packet) on a 1280x720 H.264 file of 300 frames.
// Reported: frames/s, the Go process's peak RSS and the decoder's peak
// RSS (Linux). The ffmpeg_only case is the same decode written straight to
// the null device, for the ratio: what our side costs.
func BenchmarkDecode720p(b *testing.B) {
	dir := b.TempDir()
	path := makeVideo(b, dir, "bench720.mp4", "testsrc=size=1280x720:rate=30", "-t", "10", "-pix_fmt", "yuv420p")
	b.Run("ffmpeg_only", func(b *testing.B) {
		var el time.Duration
		var runs int
		for b.Loop() {
			start := time.Now()
			cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", path,
				"-f", "rawvideo", "-pix_fmt", "bgr24", "-y", os.DevNull)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
			el += time.Since(start)
			runs++
		}
		b.ReportMetric(float64(300*runs)/el.Seconds(), "frames/s")
	})
	for _, release := range []bool{false, true} {
		name := map[bool]string{false: "gc", true: "release"}[release]
		b.Run(name, func(b *testing.B) {
			var frames, childRSS int64
			var el time.Duration
			for b.Loop() {
				n, _ := build(b, fileSrc, cfgOf("path", path))
				if err := n.(plugin.Starter).Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				s := &sink{release: release}
				start := time.Now()
				if err := n.(plugin.Source).Run(context.Background(), s); err != nil {
					b.Fatal(err)
				}
				el += time.Since(start)
				frames += s.n.Load()
				childRSS = max(childRSS, n.(*fileSource).ffmpegRSS.Load())
			}
			b.ReportMetric(float64(frames)/el.Seconds(), "frames/s")
			b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS-MB")
			b.ReportMetric(float64(childRSS)/(1<<20), "ffmpegRSS-MB")
		})
	}
}
