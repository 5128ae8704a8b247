package dev

import (
	"context"
	"fmt"
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
		NewBatchProcessor: func(c PrintConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			return newPrintSink(c, env.Stdout), nil
		},
	})
}

// newPrintSink writes as upstream's json.dumps(data, default=str).
func newPrintSink(c PrintConfig, w io.Writer) *printSink {
	return &printSink{cfg: c, w: w, enc: packet.NewJSONEncoder(packet.JSONOptions{EnsureASCII: true})}
}

type printSink struct {
	cfg PrintConfig
	w   io.Writer
	enc packet.JSONEncoder
	buf []byte
}

func (s *printSink) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	b := s.buf[:0]
	var err error
	for _, p := range batch {
		b = append(b, s.cfg.Prefix...)
		if b, err = s.enc.AppendPacket(b, p); err != nil {
			// only a value nested deeper than Python's recursion limit (a cycle)
			return fmt.Errorf("packet %s: %w", p.ID, err)
		}
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
