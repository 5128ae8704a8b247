package video

import (
	"context"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

type fakeSampler struct {
	every, offset int64
	dropped       atomic.Int64
}

func (f *fakeSampler) SampleEvery() (int64, int64) { return f.every, f.offset }
func (f *fakeSampler) DroppedAhead(n int64)        { f.dropped.Add(n) }

// With a sampler after it, the file source lets ffmpeg drop the frames the
// sampler would drop. What survives the sampler must not change: the same
// frame indices, times, meta and pixels as a full decode filtered in Go.
func TestFileSourceSamplesForDownstream(t *testing.T) {
	path := makeVideo(t, t.TempDir(), "s.mp4", "testsrc2=size=160x120:rate=24:duration=2", "-pix_fmt", "yuv420p")
	cases := []struct {
		every, offset, maxFrames int64
		fps                      float64
		loop                     bool
		wantSampled              bool
	}{
		{every: 5},
		{every: 3, offset: 1},
		{every: 4, offset: -1},
		{every: 7, offset: 2, maxFrames: 20},
		{every: 5, maxFrames: 1},
		{every: 3, fps: 10},
		{every: 1},
		{every: 4, loop: true, maxFrames: 60},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("every%d_off%d_max%d_fps%v_loop%v", tc.every, tc.offset, tc.maxFrames, tc.fps, tc.loop), func(t *testing.T) {
			cfg := func() *packet.Map {
				return cfgOf("path", path, "source_id", "cam01", "start_ts", "2026-02-14T00:00:00Z",
					"max_frames", tc.maxFrames, "fps", tc.fps, "loop", tc.loop)
			}
			// Reference: every frame, filtered here as the sampler does.
			_, all := runFile(t, cfg(), 0)
			var want []*packet.Packet
			for _, p := range all {
				if idx := frameOf(t, p).Index; (idx-tc.offset)%max(tc.every, 1) == 0 {
					want = append(want, p)
				}
			}
			n, _ := build(t, fileSrc, cfg())
			fs := &fakeSampler{every: tc.every, offset: tc.offset}
			var skipped atomic.Int64
			n.(plugin.Downstream).Downstream(fs, func(k int64) { skipped.Add(k) })
			if err := n.(plugin.Starter).Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(0)
			if err := n.(plugin.Source).Run(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			got := rec.packets()
			sampling := tc.every > 1 && !tc.loop && tc.fps == 0
			if sampling && int64(len(all)) > tc.every && len(got) >= len(all) {
				t.Fatalf("source shipped %d of %d frames: not sampled in ffmpeg", len(got), len(all))
			}
			// With loop or fps (or every_n 1) nothing is sampled: the
			// sampler filters everything itself.
			if !sampling && len(got) != len(all) {
				t.Fatalf("shipped %d frames, want all %d", len(got), len(all))
			}
			// The report reads as without the shortcut: every frame the
			// full decode emitted is shipped or accounted as dropped by
			// the sampler.
			all64 := int64(len(all))
			if int64(len(got))+skipped.Load() != all64 || fs.dropped.Load() != skipped.Load() ||
				metric(n, "emitted_total") != all64 || metric(n, "decoded_total") < all64 || metric(n, "sampled_out_total") != skipped.Load() {
				t.Fatalf("accounting: shipped %d + skipped %d (sampler told %d), want %d; metrics %v",
					len(got), skipped.Load(), fs.dropped.Load(), all64, n.(plugin.Metrics).Metrics())
			}
			var kept []*packet.Packet
			for _, p := range got {
				if idx := frameOf(t, p).Index; (idx-tc.offset)%max(tc.every, 1) == 0 {
					kept = append(kept, p)
				}
			}
			if len(kept) != len(want) || len(want) == 0 {
				t.Fatalf("kept %d frames, want %d", len(kept), len(want))
			}
			for i := range want {
				a, b := frameOf(t, want[i]), frameOf(t, kept[i])
				wm := string(packet.AppendJSON(nil, want[i].Meta, packet.Spaced))
				gm := string(packet.AppendJSON(nil, kept[i].Meta, packet.Spaced))
				if a.Index != b.Index || a.PTS != b.PTS || want[i].TS != kept[i].TS || wm != gm {
					t.Fatalf("frame %d: idx %d/%d pts %v/%v ts %s/%s meta %s / %s", i, a.Index, b.Index, a.PTS, b.PTS, want[i].TS, kept[i].TS, wm, gm)
				}
				if string(a.Raw()) != string(b.Raw()) {
					t.Fatalf("frame %d (idx %d): pixels differ", i, a.Index)
				}
			}
			if sampling && all64 > tc.every && skipped.Load() == 0 {
				t.Error("nothing accounted as sampled out")
			}
		})
	}
}

// A camera with a sampler behind it: ffmpeg ships only the frames the
// sampler keeps, indices still count the camera's frames, and max_frames
// still means the first max_frames frames of the camera.
func TestRTSPSamplesForDownstream(t *testing.T) {
	needFFmpeg(t)
	srv := startRTSPServer(t, "127.0.0.1:0")
	pub := startPublisher(t, srv.url("cam"))
	defer pub.stop()
	srv.waitPublished(t)
	n, _ := build(t, rtspName, rtspCfg(srv.url("cam"), "max_frames", 40, "latest_only", false))
	fs := &fakeSampler{every: 5, offset: 2}
	var skipped atomic.Int64
	n.(plugin.Downstream).Downstream(fs, func(k int64) { skipped.Add(k) })
	rec := newRecorder(0)
	runToEnd(t, n, rec, 60*time.Second, pub)
	var got []int64
	for _, p := range rec.packets() {
		got = append(got, frameOf(t, p).Index)
	}
	want := []int64{2, 7, 12, 17, 22, 27, 32, 37}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frame indices %v, want %v", got, want)
	}
	// The camera's first 40 frames: 8 shipped, 32 accounted as dropped by
	// the sampler (as they would have been without the shortcut).
	if skipped.Load() != 32 || fs.dropped.Load() != 32 || metric(n, "emitted_total") != 40 || metric(n, "decoded_total") < 40 {
		t.Errorf("accounting: skipped %d, sampler told %d, metrics %v", skipped.Load(), fs.dropped.Load(), n.(plugin.Metrics).Metrics())
	}
	pub.stop()
	noFFmpegChildren(t)
}

// Across a reconnect the sampled indices keep increasing and stay on the
// sampler's grid.
func TestRTSPSamplingAcrossReconnect(t *testing.T) {
	needFFmpeg(t)
	srv := startRTSPServer(t, "127.0.0.1:0")
	url := srv.url("cam")
	pub := startPublisher(t, url)
	n, _ := build(t, rtspName, rtspCfg(url, "latest_only", false))
	n.(plugin.Downstream).Downstream(&fakeSampler{every: 3, offset: 1}, func(int64) {})
	rec := newRecorder(0)
	stop, _ := runSource(t, n, rec)
	defer stop()
	rec.waitFor(t, 30*time.Second, "first frames", func(p []*packet.Packet) bool { return len(p) >= 3 })
	pub.stop()
	poll.Until(t, 15*time.Second, "stream loss to be noticed", func() bool { return metric(n, "stream_lost_total") >= 1 })
	before := len(rec.packets())
	pub = startPublisher(t, url)
	rec.waitFor(t, 30*time.Second, "frames of epoch 2", func(p []*packet.Packet) bool {
		return len(p) > before+3 && epochOf(p[len(p)-1]) == 2
	})
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	prev := int64(-1)
	for i, p := range rec.packets() {
		idx := frameOf(t, p).Index
		if idx <= prev || (idx-1)%3 != 0 {
			t.Fatalf("frame %d: index %d after %d (want increasing, = 1 mod 3)", i, idx, prev)
		}
		prev = idx
	}
	pub.stop()
	noFFmpegChildren(t)
}

// offGrid counts the frames select dropped between two shipped frames;
// kept indices missing there were skipped for a newer frame (latest_only)
// and are not the sampler's drops.
func TestOffGrid(t *testing.T) {
	cases := []struct{ every, offset, lo, hi, want int64 }{
		{5, 2, 0, 10, 8},  // 2 and 7 kept
		{5, 2, 3, 7, 4},   // none kept in 3..6
		{5, 2, 7, 8, 0},   // 7 is kept
		{5, 2, 3, 12, 8},  // 7 kept (skipped by latest_only), 12 excluded
		{4, -1, 0, 8, 6},  // kept: 3, 7
		{3, 1, 10, 10, 0}, // empty range
		{1, 0, 0, 10, 0},  // no sampling
	}
	for _, c := range cases {
		s := &sampling{every: c.every, offset: c.offset}
		if got := s.offGrid(c.lo, c.hi); got != c.want {
			t.Errorf("every %d offset %d: offGrid(%d, %d) = %d, want %d", c.every, c.offset, c.lo, c.hi, got, c.want)
		}
	}
}
