package nodes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// movingAdapter is an HTTP adapter answering frame n with two people
// walking right 2 px per frame, without track ids (a plain detector):
// A at x 10+2n (always) and B at x 40+2n (missing in frames listed in gone).
type movingAdapter struct {
	n    atomic.Int64
	gone map[int64]bool
}

func (a *movingAdapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	n := a.n.Add(1) - 1
	box := func(x int64) string {
		return fmt.Sprintf(`{"class_id": 0, "confidence": 0.9, "bbox": {"x1": %d, "y1": 5, "x2": %d, "y2": 40}}`, x, x+12)
	}
	dets := box(10 + 2*n)
	if !a.gone[n] {
		dets += ", " + box(40+2*n)
	}
	_, _ = io.WriteString(w, `{"detections": [`+dets+`]}`)
}

// runTracked sends frames through adapter detector -> event builder ->
// dedup (cooldown 60 s) and returns the track ids of the detections per
// frame and the track ids of the events dedup let through.
func runTracked(t *testing.T, cfg *packet.Map, frames int, gone map[int64]bool) (perFrame [][]int64, passed []int64) {
	t.Helper()
	srv := httptest.NewServer(&movingAdapter{gone: gone})
	t.Cleanup(srv.Close)
	cfg.Set("url", srv.URL)
	det := buildAdapter(t, adapterN, cfg)
	bld := build(t, builder, packet.MapOf("site_id", "S001"))
	dd := build(t, dedupN, packet.MapOf("cooldown_sec", 60.0))
	id := func(p *packet.Packet) int64 {
		v, _ := p.Payload.(*packet.Map).Get("track_id")
		return v.(int64)
	}
	for i := range int64(frames) {
		col := &plugintest.Collector{}
		if err := det.(plugin.Processor).Process(context.Background(), framePacket(i, 64, 48), col); err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, p := range col.Packets() {
			ids = append(ids, id(p))
			for _, ev := range plugintest.Process(t, bld, p) {
				for _, out := range plugintest.Process(t, dd, ev) {
					passed = append(passed, id(out))
				}
			}
		}
		perFrame = append(perFrame, ids)
	}
	return perFrame, passed
}

func TestModelAdapterTracker(t *testing.T) {
	t.Run("none: a new id per detection, dedup drops nothing (upstream without tracker)", func(t *testing.T) {
		perFrame, passed := runTracked(t, packet.NewMap(0), 4, nil)
		want := [][]int64{{0, 1}, {2, 3}, {4, 5}, {6, 7}}
		if fmt.Sprint(perFrame) != fmt.Sprint(want) || len(passed) != 8 {
			t.Fatalf("ids %v, passed %v", perFrame, passed)
		}
	})
	for _, typ := range []string{"iou", "bytetrack"} {
		t.Run(typ+": stable ids, dedup drops the repeats", func(t *testing.T) {
			perFrame, passed := runTracked(t, packet.MapOf("tracker", typ), 6, nil)
			for i, ids := range perFrame {
				if !slices.Equal(ids, []int64{0, 1}) {
					t.Fatalf("frame %d: ids %v, want [0 1] (all %v)", i, ids, perFrame)
				}
			}
			if !slices.Equal(passed, []int64{0, 1}) {
				t.Fatalf("dedup passed %v, want one event per person", passed)
			}
		})
	}
	t.Run("iou: a track survives a gap up to tracker_max_age, then the id is new", func(t *testing.T) {
		// B is missing in frames 1-2 (2 frames: kept at max_age 2) and 4-6
		// (3 frames: retired).
		gone := map[int64]bool{1: true, 2: true, 4: true, 5: true, 6: true}
		perFrame, passed := runTracked(t, packet.MapOf("tracker", "iou", "tracker_max_age", int64(2)), 8, gone)
		want := [][]int64{{0, 1}, {0}, {0}, {0, 1}, {0}, {0}, {0}, {0, 2}}
		if fmt.Sprint(perFrame) != fmt.Sprint(want) {
			t.Fatalf("ids %v, want %v", perFrame, want)
		}
		if !slices.Equal(passed, []int64{0, 1, 2}) {
			t.Fatalf("dedup passed %v", passed)
		}
	})
	t.Run("iou: tracker_iou above the overlap gives new ids", func(t *testing.T) {
		// A 12-px box moving 2 px overlaps 10/14 = 0.71.
		perFrame, _ := runTracked(t, packet.MapOf("tracker", "iou", "tracker_iou", 0.8), 3, nil)
		if fmt.Sprint(perFrame) != "[[0 1] [2 3] [4 5]]" {
			t.Fatalf("ids %v", perFrame)
		}
	})
}

// TestModelAdapterTrackerPerSource: one node fed by two cameras keeps one
// tracker per source_id, so each camera's ids start at 0 and a box in one
// camera never continues a track of the other.
func TestModelAdapterTrackerPerSource(t *testing.T) {
	// cam01 sees a box at x 10, cam02 one at x 40: a shared tracker would
	// number them 0 and 1.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var hdr struct {
			SourceID string `json:"source_id"`
		}
		_ = json.Unmarshal([]byte(r.Header.Get("X-Schnitzel-Request")), &hdr)
		x := 10
		if hdr.SourceID == "cam02" {
			x = 40
		}
		fmt.Fprintf(w, `{"detections": [{"class_id": 0, "confidence": 0.9, "bbox": {"x1": %d, "y1": 10, "x2": %d, "y2": 30}}]}`, x, x+20)
	}))
	defer srv.Close()
	n := buildAdapter(t, adapterN, packet.MapOf("url", srv.URL, "tracker", "iou"))
	var got []string
	for i := range int64(4) {
		p := framePacket(i, 64, 48)
		if i%2 == 1 {
			p.SourceID = "cam02"
		}
		col := &plugintest.Collector{}
		if err := n.(plugin.Processor).Process(context.Background(), p, col); err != nil {
			t.Fatal(err)
		}
		for _, out := range col.Packets() {
			v, _ := out.Payload.(*packet.Map).Get("track_id")
			got = append(got, fmt.Sprintf("%s:%v", out.SourceID, v))
		}
	}
	if fmt.Sprint(got) != "[cam01:0 cam02:0 cam01:0 cam02:0]" {
		t.Fatalf("ids %v", got)
	}
}
