package video

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

type fakeSampler struct{ every, offset int64 }

func (f fakeSampler) SampleEvery() (int64, int64) { return f.every, f.offset }

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
			n.(plugin.Downstream).Downstream(fakeSampler{tc.every, tc.offset})
			if err := n.(plugin.Starter).Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(0)
			if err := n.(plugin.Source).Run(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			got := rec.packets()
			if tc.every > 1 && !tc.loop && int64(len(all)) > tc.every && len(got) >= len(all) {
				t.Fatalf("source shipped %d of %d frames: not sampled in ffmpeg", len(got), len(all))
			}
			// With loop (or every_n 1) nothing is sampled: the sampler
			// filters everything itself.
			if (tc.every <= 1 || tc.loop) && len(got) != len(all) {
				t.Fatalf("shipped %d frames, want all %d", len(got), len(all))
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
			if tc.every > 1 && !tc.loop && tc.maxFrames == 0 && metric(n, "sampled_out_total") == 0 {
				t.Error("sampled_out_total = 0")
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
	n.(plugin.Downstream).Downstream(fakeSampler{every: 5, offset: 2})
	rec := newRecorder(0)
	stop, done := runSource(t, n, rec)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\npublisher: %s", err, pub.out)
		}
	case <-time.After(60 * time.Second):
		stop()
		t.Fatalf("no end in 60 s; got %d frames", len(rec.packets()))
	}
	var got []int64
	for _, p := range rec.packets() {
		got = append(got, frameOf(t, p).Index)
	}
	want := []int64{2, 7, 12, 17, 22, 27, 32, 37}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frame indices %v, want %v", got, want)
	}
	if d := metric(n, "decoded_total"); d != int64(len(want)) {
		t.Errorf("decoded_total = %d, want %d frames read from ffmpeg", d, len(want))
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
	n.(plugin.Downstream).Downstream(fakeSampler{every: 3, offset: 1})
	rec := newRecorder(0)
	stop, _ := runSource(t, n, rec)
	defer stop()
	rec.waitFor(t, 30*time.Second, "first frames", func(p []*packet.Packet) bool { return len(p) >= 3 })
	pub.stop()
	eventually(t, 15*time.Second, "stream loss to be noticed", func() bool { return metric(n, "stream_lost_total") >= 1 })
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
