package dev

import (
	"context"
	"errors"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// TickerConfig is TickerSource's config.
type TickerConfig struct {
	IntervalSec plugin.Seconds `yaml:"interval_sec" doc:"Seconds between packets; 0 emits as fast as downstream takes them."`
	Count       int64          `yaml:"count" doc:"Packets to emit; 0 means forever (until stopped)."`
	Kind        string         `yaml:"kind" doc:"Packet kind."`
	SourceID    string         `yaml:"source_id" doc:"Packet source_id; default the node id."`
}

// Validate rejects negative settings.
func (c *TickerConfig) Validate() error {
	var errs []error // all of them, so one validation shows every problem
	if c.IntervalSec < 0 {
		errs = append(errs, plugin.Errorf("interval_sec", "must be >= 0, got %v", c.IntervalSec))
	}
	if c.Count < 0 {
		errs = append(errs, plugin.Errorf("count", "must be >= 0 (0 = forever), got %d", c.Count))
	}
	return errors.Join(errs...)
}

func registerTicker(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[TickerConfig]{
		Name:    mod + "TickerSource",
		Role:    plugin.RoleSource,
		Out:     []string{"*"},
		Summary: "Emit a packet every interval_sec (payload {seq, ts_unix}), count times or forever.",
		Description: "For soak tests and heartbeats. Ticks are scheduled on a fixed grid from the start, so a slow " +
			"downstream delays ticks but does not make them drift; ticks missed while blocked are not replayed.",
		Defaults: TickerConfig{IntervalSec: 1, Kind: "tick"},
		Metrics: []plugin.MetricSpec{
			{Name: "emitted_total", Help: "Ticks emitted (packets taken downstream)."},
		},
		NewSource: func(c TickerConfig, env plugin.Env) (plugin.Source, error) {
			if c.SourceID == "" {
				c.SourceID = env.NodeID
			}
			cs := env.Counters()
			return &tickerSource{cfg: c, Counters: cs, emitted: cs.Get("emitted_total")}, nil
		},
	})
}

type tickerSource struct {
	cfg TickerConfig
	*plugin.Counters
	emitted *plugin.Counter
}

func (s *tickerSource) Run(ctx context.Context, out plugin.Emitter) error {
	interval := s.cfg.IntervalSec.Duration()
	var timer *time.Timer
	start := time.Now()
	for seq := int64(0); s.cfg.Count == 0 || seq < s.cfg.Count; seq++ {
		if interval > 0 && seq > 0 {
			next := start.Add(time.Duration(seq) * interval)
			if d := time.Until(next); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					timer.Stop()
					return nil
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		payload := packet.MapOf("seq", seq, "ts_unix", float64(now.UnixNano())/1e9)
		p := &packet.Packet{ID: packet.NewID(), TS: packet.FormatTS(now), Kind: s.cfg.Kind, SourceID: s.cfg.SourceID, Payload: payload}
		if err := out.Emit(p); err != nil {
			return nil
		}
		s.emitted.Add(1)
	}
	return nil
}
