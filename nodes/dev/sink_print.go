package dev

import (
	"context"
	"io"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// PrintConfig is PrintSink's config.
type PrintConfig struct {
	Prefix  string `yaml:"prefix" doc:"Text written before each JSON line."`
	Forward bool   `yaml:"forward" doc:"Also emit the packet downstream (a strict boolean: the string \"false\" is false)."`
}

func registerPrint(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[PrintConfig]{
		Name:    mod + "PrintSink",
		Role:    plugin.RoleSink,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "Print each packet as one JSON line on stdout, byte-compatible with upstream's PrintSink.",
		Description: "The line is `prefix` + the packet as Python's json.dumps prints it (keys packet_id, ts, kind, " +
			"source_id, payload, meta; `, ` and `: ` separators; ASCII escaping). In-process payloads such as video " +
			"frames print as a short summary, not pixels. Lines of one batch are written with one write.",
		New: func(c PrintConfig, env plugin.Env) (any, error) {
			return &printSink{cfg: c, w: env.Stdout}, nil
		},
	})
}

type printSink struct {
	cfg PrintConfig
	w   io.Writer
	buf []byte
}

func (s *printSink) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	return s.ProcessBatch(ctx, []*packet.Packet{p}, out)
}

func (s *printSink) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	b := s.buf[:0]
	for _, p := range batch {
		b = append(b, s.cfg.Prefix...)
		b = packet.AppendPacket(b, p, packet.Spaced)
		b = append(b, '\n')
	}
	s.buf = b[:0]
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not keep a huge buffer after one large batch
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if s.cfg.Forward {
		for _, p := range batch {
			if err := out.Emit(p); err != nil {
				return err
			}
		}
	}
	return nil
}
