package video

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// sink is an Emitter that drops what it gets, optionally releasing the
// frame (a sink that owns it), and samples the heap as it goes.
type sink struct {
	release bool
	n       atomic.Int64
	every   int64
	skip    int64 // samples before this frame count are warm-up
	maxHeap uint64
	minHeap uint64
}

func (s *sink) Emit(p *packet.Packet) error {
	n := s.n.Add(1)
	if s.release {
		v, _ := p.Payload.(*packet.Map).Get("frame")
		frameRelease(v)
	}
	if s.every > 0 && n%s.every == 0 && n > s.skip {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.maxHeap = max(s.maxHeap, ms.HeapInuse)
		if s.minHeap == 0 || ms.HeapInuse < s.minHeap {
			s.minHeap = ms.HeapInuse
		}
	}
	return nil
}

func (s *sink) EmitPort(_ string, p *packet.Packet) error { return s.Emit(p) }

// TestFlatMemoryLongRun decodes thousands of frames and checks that the
// heap stays bounded, both when downstream lets frames go to the GC (the
// default contract) and when a sink releases them to the pool.
func TestFlatMemoryLongRun(t *testing.T) {
	if testing.Short() {
		t.Skip("long run: skipped under -short")
	}
	dir := t.TempDir()
	path := makeVideo(t, dir, "clip.mp4", "testsrc=size=640x360:rate=24", "-t", "10", "-pix_fmt", "yuv420p")
	const frames = 3000
	const frameBytes = 640 * 360 * 3
	for _, release := range []bool{false, true} {
		name := map[bool]string{false: "gc", true: "release"}[release]
		t.Run(name, func(t *testing.T) {
			n, _ := build(t, fileSrc, cfgOf("path", path, "loop", true, "max_frames", frames))
			if err := n.(plugin.Starter).Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			s := &sink{release: release, every: 50, skip: 300}
			start := time.Now()
			if err := n.(plugin.Source).Run(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			if s.n.Load() != frames {
				t.Fatalf("got %d frames", s.n.Load())
			}
			t.Logf("%s: %d frames 640x360 in %v (%.0f frames/s); HeapInuse %.1f..%.1f MB (a frame is %.2f MB; a leak would be %.0f MB)",
				name, frames, el.Round(time.Millisecond), frames/el.Seconds(), mb(s.minHeap), mb(s.maxHeap), mb(frameBytes), mb(frames*frameBytes))
			// GOGC=100 lets the heap reach about twice the live set; the live
			// set is a few frames. 64 MB is ~90 frames: bounded, not leaking.
			if s.maxHeap > 64<<20 {
				t.Errorf("HeapInuse reached %.1f MB over %d frames", mb(s.maxHeap), frames)
			}
			noFFmpegChildren(t)
		})
	}
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }
