// Package track gives detections stable track ids across frames: upstream's
// IoU tracker (src/ai/vision/trackers/tracker_iou.py@0ff8387, with the IoU
// of src/ai/vision/geometry.py@0ff8387).
//
// Without a tracker every detection of a real model gets a fresh track_id,
// so dedup (keyed camera_id:event_type:track_id) never suppresses a repeat;
// with it a box that overlaps last frame's box of a track keeps that
// track's id.
//
// Update, per frame:
//
//  1. every track ages by one;
//  2. each track, in creation order, takes the not yet matched detection
//     with the highest IoU against the track's last box (strictly higher
//     wins, so ties go to the earlier detection); it matches when that IoU
//     is > 0 and >= the threshold: the detection gets the track's id, the
//     track the detection's box and age 0;
//  3. every detection with a box still unmatched starts a new track with
//     the next id of a counter starting at 0;
//  4. tracks older than MaxAge frames are removed;
//  5. a PERSON detection without a box and without an id gets the next id
//     (the protocol requires a track_id for PERSON).
//
// Detections with a box always leave with the tracker's id: an id the
// adapter set is replaced, as upstream's tracker replaced its adapters'
// per-detection counter. Upstream's min_hits is accepted and ignored.
package track

import (
	"math"
)

// Box is an axis-aligned box in pixels, (X1,Y1) top left, (X2,Y2) bottom
// right.
type Box struct {
	X1, Y1, X2, Y2 float64
}

// BoxIoU is intersection over union with areas (x2-x1)*(y2-y1) (no +1, a
// negative extent counts as 0). It is 0 when the union is empty, and for
// boxes with NaN or infinite coordinates (which therefore never match).
func BoxIoU(a, b Box) float64 {
	iw := max(0, math.Min(a.X2, b.X2)-math.Max(a.X1, b.X1))
	ih := max(0, math.Min(a.Y2, b.Y2)-math.Max(a.Y1, b.Y1))
	// Explicit conversions keep the compiler from fusing multiply-adds, so
	// results match upstream's Python bit for bit.
	inter := float64(iw * ih)
	areaA := float64(max(0, a.X2-a.X1) * max(0, a.Y2-a.Y1))
	areaB := float64(max(0, b.X2-b.X1) * max(0, b.Y2-b.Y1))
	denom := float64(areaA+areaB) - inter
	if !(denom > 0) || math.IsInf(denom, 0) {
		return 0
	}
	v := inter / denom
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// Det is one detection as the tracker sees it.
type Det struct {
	Box        Box
	NoBox      bool   // no usable box: skipped by matching (upstream: bbox not a mapping)
	ObjectType string // PERSON without box and id still gets an id
	TrackID    int64  // set by Update
	HasTrackID bool
}

// Config is the tracker's settings.
type Config struct {
	// IoU is the match threshold, clamped to 0..1 (NaN counts as 1, as
	// Python's min/max left it). A match needs IoU > 0 even at 0.
	IoU float64
	// MaxAge is how many frames in a row a track may go unmatched before
	// it is removed; at least 1.
	MaxAge int
}

// Defaults are upstream's: TRACKER_IOU 0.3, TRACKER_MAX_AGE 30.
var Defaults = Config{IoU: 0.3, MaxAge: 30}

// IoU is the tracker. It keeps state across frames of one camera; it is
// not safe for concurrent use.
type IoU struct {
	thr     float64
	maxAge  int
	tracks  []trk
	next    int64
	matched []bool
}

type trk struct {
	id  int64
	box Box
	age int
}

// New returns a tracker with c clamped as upstream did.
func New(c Config) *IoU {
	thr := c.IoU
	switch {
	case math.IsNaN(thr) || thr > 1:
		thr = 1
	case thr < 0:
		thr = 0
	}
	return &IoU{thr: thr, maxAge: max(1, c.MaxAge)}
}

// Threshold is the effective (clamped) match threshold.
func (t *IoU) Threshold() float64 { return t.thr }

// MaxAge is the effective maximum age.
func (t *IoU) MaxAge() int { return t.maxAge }

// Tracks is the number of live tracks.
func (t *IoU) Tracks() int { return len(t.tracks) }

// Update assigns track ids to one frame's detections in place. Call it for
// every frame the model answered, also with no detections, so tracks age.
func (t *IoU) Update(dets []Det) {
	for i := range t.tracks {
		t.tracks[i].age++
	}
	if cap(t.matched) < len(dets) {
		t.matched = make([]bool, len(dets))
	}
	matched := t.matched[:len(dets)]
	clear(matched)
	for ti := range t.tracks {
		tr := &t.tracks[ti]
		best, bi := 0.0, -1
		for i := range dets {
			if matched[i] || dets[i].NoBox {
				continue
			}
			if v := BoxIoU(tr.box, dets[i].Box); v > best {
				best, bi = v, i
			}
		}
		if bi >= 0 && best >= t.thr {
			d := &dets[bi]
			tr.box, tr.age = d.Box, 0
			d.TrackID, d.HasTrackID = tr.id, true
			matched[bi] = true
		}
	}
	for i := range dets {
		if matched[i] || dets[i].NoBox {
			continue
		}
		d := &dets[i]
		d.TrackID, d.HasTrackID = t.next, true
		t.tracks = append(t.tracks, trk{id: t.next, box: d.Box})
		t.next++
	}
	live := t.tracks[:0]
	for _, tr := range t.tracks {
		if tr.age <= t.maxAge {
			live = append(live, tr)
		}
	}
	clear(t.tracks[len(live):])
	t.tracks = live
	for i := range dets {
		if d := &dets[i]; d.ObjectType == "PERSON" && !d.HasTrackID {
			d.TrackID, d.HasTrackID = t.next, true
			t.next++
		}
	}
}
