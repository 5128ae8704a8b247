package nodes_test

import (
	"context"
	"encoding/json"
	"image/jpeg"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// TestVideoToSnapshotsThroughRuntime decodes a real video with the ffmpeg
// source and runs sampler → mock detector → builder → zones → dedup →
// snapshot → print through the runtime: the snapshots are JPEGs of the
// decoded frames, written only for events that dedup accepted.
func TestVideoToSnapshotsThroughRuntime(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	// A solid red 64x48 clip: colours survive the BGR → JPEG path recognisably.
	mp4 := lavfiClip(t, dir, "clip.mp4", "color=c=red:s=64x48:r=24:d=1")
	snaps := filepath.Join(dir, "snaps")
	g := `version: 2
nodes:
  - {id: video, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource,
     config: {path: "` + mp4 + `", source_id: cam01, max_frames: 12, start_ts: "2026-02-14T00:00:00Z"}}
  - {id: sample, kind: node, plugin: schnitzel_stream.packs.vision.nodes:EveryNthFrameSamplerNode, config: {every_n: 3}}
  - {id: detect, kind: node, plugin: schnitzel_stream.packs.vision.nodes:MockDetectorNode,
     config: {track_id: 1, bbox: {x1: 2, y1: 2, x2: 4, y2: 4}}}
  - {id: events, kind: node, plugin: schnitzel_stream.packs.vision.nodes:ProtocolV02EventBuilderNode, config: {site_id: S001}}
  - {id: dedup, kind: node, plugin: schnitzel_stream.packs.vision.nodes:DedupPolicyNode, config: {cooldown_sec: 3600}}
  - {id: snap, kind: node, plugin: schnitzel_stream.packs.vision.nodes:EventSnapshotNode,
     config: {base_dir: "` + snaps + `", public_prefix: /snapshots}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefix: "EV "}}
edges:
  - {from: video, to: sample}
  - {from: sample, to: detect}
  - {from: detect, to: events}
  - {from: events, to: dedup}
  - {from: dedup, to: snap}
  - {from: snap, to: out}
`
	events, rep := runGraph(t, dir, g)
	// 12 frames, every 3rd sampled = 4 detections of track 1; dedup keeps the first.
	// The sampler follows the source directly, so ffmpeg already dropped the
	// other 8 frames; the report counts them as emitted by the source and
	// dropped by the sampler, as without the shortcut.
	if len(events) != 1 {
		t.Fatalf("%d events:\n%s", len(events), strings.Join(events, "\n"))
	}
	checks := map[string]int64{
		"node.sample.kept_total": 4, "node.sample.dropped_total": 8, "node.video.sampled_out_total": 8, "node.video.emitted_total": 12, "node.detect.emitted_total": 4,
		"node.dedup.accepted_total": 1, "node.dedup.dropped_total": 3, "node.snap.written_total": 1,
	}
	for k, v := range checks {
		if rep.Metrics[k] != v {
			t.Errorf("%s = %d, want %d", k, rep.Metrics[k], v)
		}
	}
	var ev struct {
		Payload struct {
			SnapshotPath string `json:"snapshot_path"`
		} `json:"payload"`
		Meta map[string]any `json:"meta"`
	}
	if err := json.Unmarshal([]byte(events[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Payload.SnapshotPath != "/snapshots/S001/cam01/2026-02-14T00_00_00_00_00_1.jpg" {
		t.Fatalf("snapshot_path %q", ev.Payload.SnapshotPath)
	}
	if _, has := ev.Meta["frame"]; has {
		t.Fatal("meta.frame reached the sink")
	}
	f, err := os.Open(filepath.Join(snaps, "S001", "cam01", "2026-02-14T00_00_00_00_00_1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
		t.Fatalf("snapshot size %v", b)
	}
	r, gr, bl, _ := img.At(32, 24).RGBA()
	if r>>8 < 200 || gr>>8 > 60 || bl>>8 > 60 {
		t.Fatalf("snapshot pixel (%d,%d,%d), want red", r>>8, gr>>8, bl>>8)
	}
	entries, _ := os.ReadDir(filepath.Join(snaps, "S001", "cam01"))
	if len(entries) != 1 {
		t.Fatalf("%d files in the snapshot dir, want 1", len(entries))
	}
}

// TestVideoEventsWrittenWithoutSnapshotNode: with no EventSnapshotNode to
// take meta.frame off, the events still go to a JSONL file and into the
// durable queue, with upstream's meta keys (the in-process frame is left out).
func TestVideoEventsWrittenWithoutSnapshotNode(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	mp4 := lavfiClip(t, dir, "clip.mp4", "testsrc=s=64x48:r=24:d=1")
	jsonl, db := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "q.sqlite3")
	g := `version: 2
nodes:
  - {id: video, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource,
     config: {path: "` + mp4 + `", source_id: cam01, max_frames: 6, start_ts: "2026-02-14T00:00:00Z"}}
  - {id: detect, kind: node, plugin: schnitzel_stream.packs.vision.nodes:MockDetectorNode}
  - {id: events, kind: node, plugin: schnitzel_stream.packs.vision.nodes:ProtocolV02EventBuilderNode, config: {site_id: S001}}
  - {id: file, kind: sink, plugin: schnitzel_stream.nodes.file_sink:JsonlSink, config: {path: "` + jsonl + `"}}
  - {id: queue, kind: sink, plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink, config: {path: "` + db + `"}}
  - {id: out, kind: sink, plugin: schnitzel_stream.nodes.dev:PrintSink, config: {prefix: "EV "}}
edges:
  - {from: video, to: detect}
  - {from: detect, to: events}
  - {from: events, to: file}
  - {from: events, to: queue}
  - {from: events, to: out}
`
	printed, _ := runGraph(t, dir, g)
	wantKeys := []string{"frame_idx", "pos_msec", "idempotency_key", "source_packet_id"}
	metaKeys := func(line string) []string {
		v, err := packet.DecodeJSON([]byte(line)) // keeps key order
		rec, ok := v.(*packet.Map)
		if err != nil || !ok {
			t.Fatalf("line %q: %v", line, err)
		}
		meta, _ := rec.Get("meta")
		m, _ := meta.(*packet.Map)
		return m.Keys()
	}
	raw, err := os.ReadFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	written := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(written) != 6 || len(printed) != 6 {
		t.Fatalf("%d lines in the JSONL file and %d printed, want 6 each", len(written), len(printed))
	}
	for i := range written {
		for _, l := range []string{written[i], printed[i]} {
			if got := metaKeys(l); !slices.Equal(got, wantKeys) {
				t.Fatalf("meta keys %v, want %v (upstream's)", got, wantKeys)
			}
		}
	}
	q, err := queue.Open(db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 6 {
		t.Fatalf("queue holds %d rows, want 6", st.Rows)
	}
}

// slowSink takes slowSinkDelay per packet and samples the heap: the
// bottleneck a real detector is.
type slowSink struct{ maxHeap *atomic.Uint64 }

const slowSinkDelay = 4 * time.Millisecond

func (s slowSink) Process(context.Context, *packet.Packet, plugin.Emitter) error {
	time.Sleep(slowSinkDelay)
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	for {
		old := s.maxHeap.Load()
		if ms.HeapInuse <= old || s.maxHeap.CompareAndSwap(old, ms.HeapInuse) {
			return nil
		}
	}
}

// TestFramesWaitingForASlowNodeAreBoundedByBytes: a file source decodes far
// faster than the sink takes frames; the frames waiting in between are
// bounded by --inbox-max-bytes (4 MiB here: a dozen 640x360 frames), not by
// inbox_max (1024 packets, all 240 frames of the clip: 79 MiB).
func TestFramesWaitingForASlowNodeAreBoundedByBytes(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	mp4 := lavfiClip(t, dir, "clip.mp4", "testsrc=s=640x360:r=24:d=10")
	var peak atomic.Uint64
	extraNodes = func(r *plugin.Registry) {
		plugin.Register(r, plugin.Spec[dev.Empty]{
			Name: "schnitzel_stream.test:SlowSink", Role: plugin.RoleSink,
			New: func(dev.Empty, plugin.Env) (any, error) { return slowSink{&peak}, nil },
		})
	}
	defer func() { extraNodes = nil }()
	goruntime.GC()
	g := `version: 2
nodes:
  - {id: video, kind: source, plugin: schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource, config: {path: "` + mp4 + `"}}
  - {id: slow, kind: sink, plugin: schnitzel_stream.test:SlowSink}
edges:
  - {from: video, to: slow}
`
	_, rep := runGraph(t, dir, g, func(o *engine.Options) { o.InboxBytes = 4 << 20 })
	if got := rep.Metrics["node.slow.consumed"]; got != 240 || rep.Status != "ok" {
		t.Fatalf("the slow sink took %d of 240 frames, status %q", got, rep.Status)
	}
	const frame = 640 * 360 * 3 / 2
	t.Logf("peak HeapInuse %.1f MiB (frame %.2f MiB; all 240 frames %.0f MiB)", float64(peak.Load())/(1<<20), float64(frame)/(1<<20), 240*float64(frame)/(1<<20))
	if peak.Load() > 40<<20 {
		t.Errorf("heap reached %.1f MiB behind a slow sink with a 4 MiB inbox bound", float64(peak.Load())/(1<<20))
	}
}
