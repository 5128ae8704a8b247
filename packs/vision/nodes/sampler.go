package nodes

import (
	"context"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SamplerConfig is EveryNthFrameSamplerNode's config.
type SamplerConfig struct {
	EveryN int64 `yaml:"every_n" doc:"Keep one frame in every_n; values below 1 count as 1."`
	Offset int64 `yaml:"offset" doc:"Keep frames whose frame_idx - offset is a multiple of every_n."`
}

func registerSampler(r *plugin.Registry) {
	name, aliases := names("video", "EveryNthFrameSamplerNode")
	plugin.Register(r, plugin.Spec[SamplerConfig]{
		Name: name, Aliases: aliases,
		Role: plugin.RoleNode, In: []string{"frame"}, Out: []string{"frame"},
		Summary: "Keep every Nth frame by payload.frame_idx; drop the rest.",
		Description: "A frame is kept iff (frame_idx - offset) mod every_n == 0; kept packets pass unchanged. " +
			"A payload without an integer frame_idx drops that packet (counted as a node failure). " +
			"Dropped frames are not released: a node that receives a " +
			"frame does not own a reference to it (package frame), and the source recycles what it never handed over.",
		Defaults: SamplerConfig{EveryN: 1},
		Metrics: []plugin.MetricSpec{
			{Name: "kept_total", Help: "Frames kept (every every_n-th, from offset)."},
			{Name: "dropped_total", Help: "Frames dropped by the sampling, those the source did not ship for it included (on purpose)."},
		},
		NewProcessor: func(c SamplerConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			return &sampler{Counters: cs, every: max(1, c.EveryN), offset: c.Offset,
				kept: cs.Get("kept_total"), dropped: cs.Get("dropped_total")}, nil
		},
	})
}

type sampler struct {
	*plugin.Counters
	every, offset int64
	kept, dropped *plugin.Counter
}

func (s *sampler) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	_, idx, err := frameIdx(p)
	if err != nil {
		return err
	}
	if (idx-s.offset)%s.every != 0 {
		s.dropped.Add(1)
		return nil
	}
	s.kept.Add(1)
	return out.Emit(p)
}

// SampleEvery tells a video source in front of the sampler which frame
// indices it keeps, so the decoder ships only those (see plugin.Downstream).
func (s *sampler) SampleEvery() (every, offset int64) { return s.every, s.offset }

// DroppedAhead counts frames the source did not ship because this sampler
// would have dropped them, so dropped_total reads as without the shortcut.
func (s *sampler) DroppedAhead(n int64) { s.dropped.Add(n) }

var (
	_ plugin.Processor = (*sampler)(nil)
	_ plugin.Metrics   = (*sampler)(nil)
)
