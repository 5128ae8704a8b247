package execnodes

import (
	"context"
	"errors"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// source is ProcessSource: the plugin writes emit frames, then end.
type source struct{ r *runner }

func (s *source) Start(ctx context.Context) error { return (&node{r: s.r}).Start(ctx) }

func (s *source) Close(ctx context.Context) error { s.r.close(ctx); return nil }

func (s *source) Metrics() []plugin.Metric { return s.r.Metrics() }

// Run reads frames as fast as Emit takes packets: the pipe is the only
// read-ahead, so backpressure reaches the plugin as a blocked write.
func (s *source) Run(ctx context.Context, out plugin.Emitter) error {
	r := s.r
	for {
		c, err := r.ensure(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		it, ok, err := c.next(ctx, nil)
		switch {
		case err != nil:
			return nil // ctx ended: a stop
		case !ok:
			r.lose(c, r.errf("ended without an end frame: %s", c.exitReason()))
			r.warn.Warn(r.log, "source plugin died", "error", r.lastErr.Error())
			continue
		case it.err != nil:
			r.garbage.Add(1)
			r.lose(c, r.errf("%v (plugin killed)", it.err))
			r.warn.Warn(r.log, "source plugin broke the protocol", "error", r.lastErr.Error())
			continue
		}
		switch it.f.Type {
		case "emit":
			raw, _ := it.f.M.Get("packet")
			p, err := toPacket(raw, nil, r.nodeID, "emit.packet")
			if err != nil {
				r.garbage.Add(1)
				r.lose(c, r.errf("%v (plugin killed)", err))
				r.warn.Warn(r.log, "source plugin broke the protocol", "error", r.lastErr.Error())
				continue
			}
			r.inARow = 0
			if ctx.Err() != nil { // stopped: emit nothing more, even what was read
				return nil
			}
			if err := out.Emit(p); err != nil {
				if errors.Is(err, plugin.ErrStop) {
					return nil
				}
				return err
			}
		case "end":
			return nil
		case "error":
			msg, _ := it.f.M.GetString("message")
			return r.errf("source failed: %s", msg)
		default:
			r.garbage.Add(1)
			r.lose(c, r.errf("unexpected frame %q from a source (plugin killed)", it.f.Type))
			r.warn.Warn(r.log, "source plugin broke the protocol", "error", r.lastErr.Error())
		}
	}
}
