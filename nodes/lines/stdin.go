package lines

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// StdinConfig is StdinSource's config.
type StdinConfig struct {
	LineConfig `yaml:",inline"`
}

// Validate implements the plugin config check.
func (c *StdinConfig) Validate() error { return c.validate() }

func registerStdin(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[StdinConfig]{
		Name:    mod + "StdinSource",
		Role:    plugin.RoleSource,
		Out:     []string{"*"},
		Summary: "Read lines or NDJSON from the process's stdin, one packet per line, until EOF.",
		Description: `
Each line becomes one packet (see format); meta holds line_number (1-based). At EOF the source
ends, the graph drains and the run ends: ` + "`printf '{\"a\":1}\\n' | schnitzel --graph g.yaml`" + `.
A last line without a newline is emitted too. The default kind is event, the kind most nodes take.
Reading stdin cannot be interrupted: when the run stops before EOF, the source stops emitting at
once and the process's exit ends the read.`,
		Stability: plugin.Experimental,
		Defaults:  StdinConfig{LineConfig: lineDefaults("stdin")},
		Metrics:   lineMetricSpecs,
		NewSource: func(c StdinConfig, env plugin.Env) (plugin.Source, error) {
			cs := env.Counters()
			return &stdinSource{cfg: c, in: env.Stdin, Counters: cs, m: newLineMetrics(cs)}, nil
		},
	})
}

type stdinSource struct {
	cfg StdinConfig
	in  io.Reader
	*plugin.Counters
	m lineMetrics

	once  sync.Once
	items chan stdinItem
	done  chan struct{} // closed by Close: the reader stops at its next line
	close sync.Once
}

type stdinItem struct {
	line []byte
	long bool
	err  error // io.EOF at the end
}

// Run reads on its own goroutine, so that a cancelled run returns at once
// even while a read of stdin (which cannot be interrupted) blocks.
func (s *stdinSource) Run(ctx context.Context, out plugin.Emitter) error {
	if ctx.Err() != nil {
		return nil
	}
	s.once.Do(func() {
		s.items = make(chan stdinItem)
		s.done = make(chan struct{})
		go s.read()
	})
	var n int64
	for {
		var it stdinItem
		select {
		case <-ctx.Done():
			return nil
		case it = <-s.items:
		}
		if it.err == io.EOF {
			return nil
		}
		if it.err != nil {
			return fmt.Errorf("read stdin: %w", it.err)
		}
		n++
		payload, ok, err := s.cfg.decode(&s.m, it.line, it.long)
		if err != nil {
			return fmt.Errorf("stdin line %d: %w", n, err)
		}
		if !ok {
			continue
		}
		p := packet.New(s.cfg.Kind, s.cfg.SourceID, payload, "", nil)
		p.Meta = packet.MapOf("line_number", n)
		if err := out.Emit(p); err != nil {
			if errors.Is(err, plugin.ErrStop) {
				return nil
			}
			return err
		}
	}
}

// read hands each line over, a copy, until EOF, an error or Close.
func (s *stdinSource) read() {
	r := newLineReader(s.in, s.cfg.MaxLineBytes)
	for {
		line, _, _, long, err := r.next()
		it := stdinItem{line: append([]byte(nil), line...), long: long, err: err}
		select {
		case s.items <- it:
		case <-s.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// Close stops the reader goroutine once its current read returns.
func (s *stdinSource) Close(context.Context) error {
	s.once.Do(func() {}) // a Run that starts after Close starts nothing
	s.close.Do(func() {
		if s.done != nil {
			close(s.done)
		}
	})
	return nil
}
