package lines

import (
	"context"
	"fmt"
	"io"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// StdoutConfig is StdoutSink's config.
type StdoutConfig struct {
	PayloadOnly bool `yaml:"payload_only" doc:"Write only each packet's payload, not the whole packet."`
	EnsureASCII bool `yaml:"ensure_ascii" doc:"Escape non-ASCII characters as \\uXXXX (as PrintSink does); off writes UTF-8."`
}

func registerStdout(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[StdoutConfig]{
		Name: mod + "StdoutSink",
		Role: plugin.RoleSink, StdoutData: true,
		In:      []string{"*"},
		Summary: "Write each packet as one compact JSON line (NDJSON) on stdout, or only its payload.",
		Description: `
The line is the packet with upstream's keys (packet_id, ts, kind, source_id, payload, meta), or
with payload_only its payload alone, in compact form (no spaces) and UTF-8, for jq and other
NDJSON readers. The encoder is PrintSink's; what differs is the form: PrintSink prints what
upstream's PrintSink prints (` + "`, `" + ` and ` + "`: `" + ` separators, ASCII escapes, a prefix), and is the
one to use for byte-compatible output. Values that are not JSON (video frames) are written as a
short summary string. Lines of one batch are written with one write.`,
		Stability: plugin.Experimental,
		NewBatchProcessor: func(c StdoutConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			return &stdoutSink{cfg: c, w: env.Stdout,
				enc: packet.NewJSONEncoder(packet.JSONOptions{Style: packet.Compact, EnsureASCII: c.EnsureASCII})}, nil
		},
	})
}

type stdoutSink struct {
	cfg StdoutConfig
	w   io.Writer
	enc packet.JSONEncoder
	buf []byte
}

func (s *stdoutSink) ProcessBatch(_ context.Context, batch []*packet.Packet, _ plugin.Emitter) error {
	b := s.buf[:0]
	var err error
	for _, p := range batch {
		if s.cfg.PayloadOnly {
			b, err = s.enc.Append(b, p.Payload)
		} else {
			b, err = s.enc.AppendPacket(b, p)
		}
		if err != nil {
			// only a value nested deeper than MaxJSONDepth (a cycle)
			return fmt.Errorf("packet %s: %w", p.ID, err)
		}
		b = append(b, '\n')
	}
	s.buf = b[:0]
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not keep a huge buffer after one large batch
	}
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	return nil
}
