package track

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"
)

func box(x1, y1, x2, y2 float64) Box { return Box{x1, y1, x2, y2} }

func TestBoxIoU(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name string
		a, b Box
		want float64
	}{
		{"identical", box(0, 0, 10, 10), box(0, 0, 10, 10), 1},
		{"half overlap", box(0, 0, 10, 10), box(5, 0, 15, 10), 50.0 / 150},
		{"no +1 on areas", box(0, 0, 2, 2), box(1, 1, 3, 3), 1.0 / 7},
		{"touching edges", box(0, 0, 10, 10), box(10, 0, 20, 10), 0},
		{"disjoint", box(0, 0, 1, 1), box(5, 5, 6, 6), 0},
		{"contained", box(0, 0, 10, 10), box(2, 2, 4, 4), 4.0 / 100},
		{"zero-area both", box(3, 3, 3, 3), box(3, 3, 3, 3), 0},
		{"zero-area one", box(3, 3, 3, 8), box(0, 0, 10, 10), 0},
		{"inverted box counts as empty", box(10, 10, 0, 0), box(0, 0, 10, 10), 0},
		{"NaN", box(nan, 0, 10, 10), box(0, 0, 10, 10), 0},
		{"Inf", box(0, 0, inf, 10), box(0, 0, 10, 10), 0},
		{"both Inf", box(0, 0, inf, inf), box(0, 0, inf, inf), 0},
	}
	for _, c := range cases {
		if got := BoxIoU(c.a, c.b); got != c.want {
			t.Errorf("%s: IoU %v, want %v", c.name, got, c.want)
		}
		if got := BoxIoU(c.b, c.a); got != c.want {
			t.Errorf("%s (swapped): IoU %v, want %v", c.name, got, c.want)
		}
	}
}

// frame is one Update input: boxes (nil = no box) and object types.
type in struct {
	b   *Box
	obj string
	id  int64 // preset id when >= 0
}

func d(x1, y1, x2, y2 float64) in { b := box(x1, y1, x2, y2); return in{b: &b, obj: "PERSON", id: -1} }

const none = int64(-1)

// run feeds frames through a tracker and returns the ids per frame (-1: none).
func run(tr *IoU, frames [][]in) [][]int64 {
	var out [][]int64
	for _, f := range frames {
		dets := make([]Det, len(f))
		for i, x := range f {
			dets[i].ObjectType = x.obj
			if x.b != nil {
				dets[i].Box = *x.b
			} else {
				dets[i].NoBox = true
			}
			if x.id >= 0 {
				dets[i].TrackID, dets[i].HasTrackID = x.id, true
			}
		}
		tr.Update(dets)
		ids := make([]int64, len(dets))
		for i, det := range dets {
			ids[i] = none
			if det.HasTrackID {
				ids[i] = det.TrackID
			}
		}
		out = append(out, ids)
	}
	return out
}

func TestRules(t *testing.T) {
	noBox := func(obj string, id int64) in { return in{obj: obj, id: id} }
	withID := func(x in, id int64) in { x.id = id; return x }
	vehicle := func(x in) in { x.obj = "VEHICLE"; return x }
	empty := []in{}
	cases := []struct {
		name   string
		cfg    Config
		frames [][]in
		want   [][]int64
	}{
		{"new ids from 0 in detection order", Defaults,
			[][]in{{d(0, 0, 10, 10), d(50, 50, 60, 60), d(100, 0, 110, 10)}},
			[][]int64{{0, 1, 2}}},
		{"moving box keeps its id", Defaults,
			[][]in{{d(0, 0, 10, 10)}, {d(2, 0, 12, 10)}, {d(4, 1, 14, 11)}, {d(6, 1, 16, 11)}},
			[][]int64{{0}, {0}, {0}, {0}}},
		{"order of detections does not matter to matching", Defaults,
			[][]in{{d(0, 0, 10, 10), d(50, 50, 60, 60)}, {d(51, 50, 61, 60), d(1, 0, 11, 10)}},
			[][]int64{{0, 1}, {1, 0}}},
		{"below threshold is a new track", Config{IoU: 0.5, MaxAge: 30},
			// IoU 50/150 = 0.33 < 0.5
			[][]in{{d(0, 0, 10, 10)}, {d(5, 0, 15, 10)}},
			[][]int64{{0}, {1}}},
		{"IoU equal to the threshold matches", Config{IoU: 0.5, MaxAge: 30},
			// IoU 100/200 = 0.5
			[][]in{{d(0, 0, 10, 20)}, {d(0, 0, 10, 10)}},
			[][]int64{{0}, {0}}},
		{"threshold above 1 clamps to 1: only identical boxes match", Config{IoU: 7, MaxAge: 30},
			[][]in{{d(0, 0, 10, 10)}, {d(0, 0, 10, 10)}, {d(1, 0, 11, 10)}},
			[][]int64{{0}, {0}, {1}}},
		{"NaN threshold counts as 1", Config{IoU: math.NaN(), MaxAge: 30},
			[][]in{{d(0, 0, 10, 10)}, {d(0, 0, 10, 10)}, {d(1, 0, 11, 10)}},
			[][]int64{{0}, {0}, {1}}},
		{"negative threshold clamps to 0: any overlap matches, none does not", Config{IoU: -1, MaxAge: 30},
			[][]in{{d(0, 0, 10, 10)}, {d(9, 9, 19, 19)}, {d(19, 0, 29, 9)}},
			[][]int64{{0}, {0}, {1}}},
		{"tie between detections goes to the first", Defaults,
			// both overlap the track by 50/150
			[][]in{{d(10, 0, 20, 10)}, {d(15, 0, 25, 10), d(5, 0, 15, 10)}},
			[][]int64{{0}, {0, 1}}},
		{"higher IoU wins over earlier detection", Defaults,
			[][]in{{d(10, 0, 20, 10)}, {d(15, 0, 25, 10), d(11, 0, 21, 10)}},
			[][]int64{{0}, {1, 0}}},
		{"older track picks first (greedy in creation order)", Defaults,
			// track 0 at 0..10, track 1 at 6..16; the new box 4..14 overlaps
			// track 1 more (8/12) than track 0 (6/14) but track 0 asks first.
			[][]in{{d(0, 0, 10, 10), d(6, 0, 16, 10)}, {d(4, 0, 14, 10)}},
			[][]int64{{0, 1}, {0}}},
		{"a detection matches at most one track", Defaults,
			[][]in{{d(0, 0, 10, 10), d(1, 0, 11, 10)}, {d(0, 0, 10, 10)}},
			[][]int64{{0, 1}, {0}}},
		{"unmatched track survives max_age empty frames", Config{IoU: 0.3, MaxAge: 2},
			[][]in{{d(0, 0, 10, 10)}, empty, empty, {d(0, 0, 10, 10)}},
			[][]int64{{0}, {}, {}, {0}}},
		{"and is removed after max_age+1", Config{IoU: 0.3, MaxAge: 2},
			[][]in{{d(0, 0, 10, 10)}, empty, empty, empty, {d(0, 0, 10, 10)}},
			[][]int64{{0}, {}, {}, {}, {1}}},
		{"max_age below 1 counts as 1", Config{IoU: 0.3, MaxAge: 0},
			[][]in{{d(0, 0, 10, 10)}, empty, {d(0, 0, 10, 10)}, empty, empty, {d(0, 0, 10, 10)}},
			[][]int64{{0}, {}, {0}, {}, {}, {1}}},
		{"a match resets the age and moves the track", Config{IoU: 0.3, MaxAge: 1},
			[][]in{{d(0, 0, 10, 10)}, empty, {d(2, 0, 12, 10)}, empty, {d(4, 0, 14, 10)}},
			[][]int64{{0}, {}, {0}, {}, {0}}},
		{"the adapter's id is replaced on a box", Defaults,
			[][]in{{withID(d(0, 0, 10, 10), 42)}, {withID(d(0, 0, 10, 10), 43), withID(d(50, 0, 60, 10), 44)}},
			[][]int64{{0}, {0, 1}}},
		{"PERSON without box gets a fresh id after the new tracks", Defaults,
			[][]in{{noBox("PERSON", -1), d(0, 0, 10, 10), noBox("VEHICLE", -1), noBox("PERSON", 7)}},
			[][]int64{{1, 0, none, 7}}},
		{"the PERSON id does not start a track", Defaults,
			[][]in{{noBox("PERSON", -1)}, {d(0, 0, 10, 10)}},
			[][]int64{{0}, {1}}},
		{"non-PERSON detections are tracked too", Defaults,
			[][]in{{vehicle(d(0, 0, 10, 10))}, {vehicle(d(1, 0, 11, 10))}},
			[][]int64{{0}, {0}}},
		{"zero-area boxes never match", Config{IoU: 0, MaxAge: 30},
			[][]in{{d(5, 5, 5, 5)}, {d(5, 5, 5, 5)}},
			[][]int64{{0}, {1}}},
		{"NaN boxes never match", Defaults,
			[][]in{{d(math.NaN(), 0, 10, 10)}, {d(math.NaN(), 0, 10, 10)}, {d(0, 0, 10, 10)}},
			[][]int64{{0}, {1}, {2}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := run(New(c.cfg), c.frames)
			for i := range c.want {
				if !slices.Equal(got[i], c.want[i]) {
					t.Fatalf("frame %d: ids %v, want %v (all: %v)", i, got[i], c.want[i], got)
				}
			}
		})
	}
}

func TestClamp(t *testing.T) {
	for _, c := range []struct {
		in      Config
		thr     float64
		maxAge  int
		comment string
	}{
		{Defaults, 0.3, 30, "defaults"},
		{Config{IoU: -0.5, MaxAge: -4}, 0, 1, "low"},
		{Config{IoU: 1.5, MaxAge: 0}, 1, 1, "high"},
		{Config{IoU: math.Inf(-1), MaxAge: 1}, 0, 1, "-Inf"},
	} {
		tr := New(c.in)
		if tr.Threshold() != c.thr || tr.MaxAge() != c.maxAge {
			t.Errorf("%s: %v %v", c.comment, tr.Threshold(), tr.MaxAge())
		}
	}
}

func TestTracksArePruned(t *testing.T) {
	tr := New(Config{IoU: 0.3, MaxAge: 3})
	for i := range 100 {
		// a box jumping far each frame: a new track every frame
		x := float64(i * 100)
		tr.Update([]Det{{Box: box(x, 0, x+10, 10)}})
	}
	if n := tr.Tracks(); n != 4 {
		t.Fatalf("%d live tracks, want max_age+1 = 4", n)
	}
}

// TestUpstreamVectors replays sequences generated by running upstream's
// IOUTracker (testdata/gen_vectors.py, see its docstring to regenerate):
// every detection must get the same track_id as upstream gave it.
func TestUpstreamVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/upstream_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Name   string  `json:"name"`
			IoU    float64 `json:"iou"`
			MaxAge int     `json:"max_age"`
			Frames [][]struct {
				ObjectType string `json:"object_type"`
				BBox       *struct {
					X1 float64 `json:"x1"`
					Y1 float64 `json:"y1"`
					X2 float64 `json:"x2"`
					Y2 float64 `json:"y2"`
				} `json:"bbox"`
				TrackID *int64 `json:"track_id"`
			} `json:"frames"`
			Want [][]*int64 `json:"want"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 10 {
		t.Fatalf("only %d cases", len(doc.Cases))
	}
	dets := 0
	for _, c := range doc.Cases {
		tr := New(Config{IoU: c.IoU, MaxAge: c.MaxAge})
		for fi, f := range c.Frames {
			ds := make([]Det, len(f))
			for i, x := range f {
				ds[i].ObjectType = x.ObjectType
				if x.BBox == nil {
					ds[i].NoBox = true
				} else {
					ds[i].Box = Box{x.BBox.X1, x.BBox.Y1, x.BBox.X2, x.BBox.Y2}
				}
				if x.TrackID != nil {
					ds[i].TrackID, ds[i].HasTrackID = *x.TrackID, true
				}
			}
			tr.Update(ds)
			for i, det := range ds {
				w := c.Want[fi][i]
				if (w == nil) != !det.HasTrackID || (w != nil && *w != det.TrackID) {
					t.Fatalf("%s frame %d det %d: id %d (set %v), upstream %v", c.Name, fi, i, det.TrackID, det.HasTrackID, w)
				}
				dets++
			}
		}
	}
	t.Logf("%d cases, %d detections identical to upstream", len(doc.Cases), dets)
}
