package video

import "sync/atomic"

// indexSampler is a node that keeps only frames with frame_idx = offset
// (mod every): EveryNthFrameSamplerNode. DroppedAhead tells it about frames
// the source did not ship, so its counters read as without the shortcut.
type indexSampler interface {
	SampleEvery() (every, offset int64)
	DroppedAhead(n int64)
}

// sampling is a video source's side of plugin.Downstream: with every > 1,
// ffmpeg's select filter ships only the frames the sampler right after the
// source keeps, and the frames it drops are accounted as emitted by the
// source and dropped by the sampler.
type sampling struct {
	every, offset int64
	sampler       indexSampler
	skipFn        func(int64) // the runtime's account of frames not shipped
	sampledOut    atomic.Int64
}

// attach takes the hint when next is a sampler that drops anything.
func (s *sampling) attach(next any, skipped func(int64)) bool {
	sm, ok := next.(indexSampler)
	if !ok {
		return false
	}
	every, offset := sm.SampleEvery()
	if every <= 1 {
		return false
	}
	s.every, s.offset, s.sampler, s.skipFn = every, offset, sm, skipped
	return true
}

// firstFrom is the first frame (0-based) of a stream whose first frame has
// index base that the sampler keeps: (base + n - offset) mod every == 0.
func (s *sampling) firstFrom(base int64) int64 {
	return ((s.offset-base)%s.every + s.every) % s.every
}

// dropAhead accounts n frames ffmpeg did not ship for the sampler.
func (s *sampling) dropAhead(n int64) {
	if n <= 0 || s.every <= 1 {
		return
	}
	s.sampledOut.Add(n)
	s.skipFn(n)
	s.sampler.DroppedAhead(n)
}

// offGrid counts the indices in [lo, hi) the sampler does not keep: the
// frames select dropped. Kept indices missing there were shipped but
// skipped for a newer frame (latest_only), counted in skipped_total.
func (s *sampling) offGrid(lo, hi int64) int64 {
	if s.every <= 1 || hi <= lo {
		return 0
	}
	onGrid := floorDiv(hi-1-s.offset, s.every) - floorDiv(lo-1-s.offset, s.every)
	return hi - lo - onGrid
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
