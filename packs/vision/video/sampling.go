package video

import (
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

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

// indexer returns the decoder pump's nextIndex for a stream whose first
// frame has index base; read counts the frames read. Without sampling the
// index is read's count; with it, the k-th frame read is the k-th frame
// the sampler keeps from base on.
func (s *sampling) indexer(base int64, read *atomic.Int64) func() int64 {
	if s.every <= 1 {
		return func() int64 { return read.Add(1) - 1 }
	}
	first := base + s.firstFrom(base)
	var k int64
	return func() int64 {
		read.Add(1)
		idx := first + k*s.every
		k++
		return idx
	}
}

// arrive accounts what select dropped before a frame with index idx, when
// next is the index after the last frame handled. With sampling and a
// max_frames limit, a frame at or past the limit accounts the frames up to
// it instead and arrive reports true: the source stops without emitting.
func (s *sampling) arrive(idx, next, maxFrames int64) (past bool) {
	if s.every > 1 && maxFrames > 0 && idx >= maxFrames {
		s.dropAhead(s.offGrid(next, maxFrames))
		return true
	}
	s.dropAhead(s.offGrid(next, idx))
	return false
}

// metrics are the counters every video source reports first: frames not
// shipped count as emitted and decoded, as without the shortcut.
// samplingMetrics declares what sampling.metrics reports; each call
// returns a new slice, so the specs can append their own.
func samplingMetrics() []plugin.MetricSpec {
	return []plugin.MetricSpec{
		{Name: "emitted_total", Help: "Frames emitted, those not shipped for the sampler right behind included."},
		{Name: "decoded_total", Help: "Frames ffmpeg decoded, those not shipped for the sampler included."},
		{Name: "sampled_out_total", Help: "Frames not shipped because the sampler right behind would drop them (its dropped_total counts them too)."},
	}
}

func (s *sampling) metrics(emitted, decoded int64) []plugin.Metric {
	out := s.sampledOut.Load()
	return []plugin.Metric{
		{Name: "emitted_total", Value: emitted + out},
		{Name: "decoded_total", Value: decoded + out},
		// Frames ffmpeg decoded but did not ship because the sampler after
		// the source drops them (counted by its dropped_total too).
		{Name: "sampled_out_total", Value: out},
	}
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
