package natsnodes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// CoreSinkConfig is NatsSink's config.
type CoreSinkConfig struct {
	ConnConfig `yaml:",inline"`
	Subject    string `yaml:"subject" required:"true" example:"events.{source_id}" doc:"Subject to publish on; {source_id}, {kind}, {packet_id}, {payload.x}, {meta.y} are replaced by the packet's fields. A packet whose subject comes out invalid is dropped and counted."`
}

// Validate checks the keys.
func (c *CoreSinkConfig) Validate() error {
	errs := []error{c.ConnConfig.Validate()}
	if _, err := parseSubject(c.Subject); err != nil {
		errs = append(errs, plugin.Errorf("subject", "subject: %v", err))
	}
	return errors.Join(errs...)
}

// CoreSourceConfig is NatsSource's config.
type CoreSourceConfig struct {
	ConnConfig `yaml:",inline"`
	Subject    string `yaml:"subject" required:"true" example:"events.>" doc:"Subject to subscribe to (wildcards allowed)."`
	Queue      string `yaml:"queue" example:"workers" doc:"Queue group: the subscribers of one group share the messages (each goes to one of them)."`
	Buffer     int    `yaml:"buffer" doc:"Messages held between the subscription and the graph; beyond it the client drops them (counted: core NATS is at most once)."`
	Kind       string `yaml:"kind" doc:"Kind of packets made from bodies that are not a schnitzel packet (JSON or text payload)."`
	SourceID   string `yaml:"source_id" doc:"source_id of such packets; empty: the message's subject."`
}

// Validate checks the keys.
func (c *CoreSourceConfig) Validate() error {
	errs := []error{c.ConnConfig.Validate()}
	if err := checkFilter(c.Subject); err != nil {
		errs = append(errs, plugin.Errorf("subject", "subject: %v", err))
	}
	if c.Buffer < 1 {
		errs = append(errs, plugin.Errorf("buffer", "buffer must be >= 1"))
	}
	return errors.Join(errs...)
}

func registerCore(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[CoreSinkConfig]{
		Name:      mod + "NatsSink",
		Role:      plugin.RoleSink,
		InProfile: plugin.ProfileJSON,
		Summary:   "Publish packets on core NATS (at most once: no acknowledgement).",
		Description: `
The body is the packet's portable JSON envelope. While disconnected the client buffers up to its
reconnect buffer (8 MiB); beyond it packets are dropped and counted. Use JetStreamSink for
delivery that survives an outage.`,
		Stability: plugin.Experimental,
		Metrics: append(slices.Clone(connMetrics),
			plugin.MetricSpec{Name: "published_total", Help: "Packets handed to the client."},
			plugin.MetricSpec{Name: "invalid_subject_total", Help: "Packets dropped: their subject came out empty or invalid.", Loss: true},
			plugin.MetricSpec{Name: "rejected_total", Help: "Packets dropped: not portable JSON, too large, or the reconnect buffer full.", Loss: true},
		),
		Defaults: CoreSinkConfig{ConnConfig: defaultConn},
		NewBatchProcessor: func(c CoreSinkConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			t, err := parseSubject(c.Subject)
			if err != nil {
				return nil, err
			}
			cs := env.Counters()
			return &coreSink{cfg: c, env: env, tmpl: t, Counters: cs, st: newConnStats(cs),
				published: cs.Get("published_total"), invalid: cs.Get("invalid_subject_total"), rejected: cs.Get("rejected_total")}, nil
		},
	})
	plugin.Register(r, plugin.Spec[CoreSourceConfig]{
		Name:       mod + "NatsSource",
		Role:       plugin.RoleSource,
		OutProfile: plugin.ProfileJSON,
		Summary:    "Subscribe to core NATS (optionally in a queue group; at most once).",
		Description: `
A body in the envelope NatsSink/JetStreamSink write becomes that packet; any other body becomes a
new packet of kind ` + "`kind`" + ` with the JSON value (or the text) as payload. Messages that
arrive while the graph is behind by more than buffer are dropped by the client and counted.`,
		Stability: plugin.Experimental,
		Metrics: append(slices.Clone(connMetrics),
			plugin.MetricSpec{Name: "received_total", Help: "Messages received."},
			plugin.MetricSpec{Name: "dropped_total", Help: "Messages the client dropped: the graph was behind by more than buffer.", Loss: true},
		),
		Defaults: CoreSourceConfig{ConnConfig: defaultConn, Buffer: 4096, Kind: "event"},
		NewSource: func(c CoreSourceConfig, env plugin.Env) (plugin.Source, error) {
			cs := env.Counters()
			src := &coreSource{cfg: c, env: env, Counters: cs, st: newConnStats(cs),
				received: cs.Get("received_total"), dropped: cs.Get("dropped_total")}
			cs.Read("dropped_total", src.droppedNow)
			return src, nil
		},
	})
}

type coreSink struct {
	cfg  CoreSinkConfig
	env  plugin.Env
	tmpl subjectTemplate
	st   connStats
	warn plugin.RateLog
	nc   *nats.Conn

	*plugin.Counters
	published, invalid, rejected *plugin.Counter
}

func (s *coreSink) Start(context.Context) error {
	nc, err := connect(s.cfg.ConnConfig, s.env.NodeID, s.env.Logger, &s.st)
	if err != nil {
		return fmt.Errorf("node %q: %w", s.env.NodeID, err)
	}
	s.nc = nc
	return nil
}

func (s *coreSink) drop(ctr *plugin.Counter, p *packet.Packet, err error) {
	ctr.Add(1)
	s.warn.Warn(s.env.Logger, "packet dropped", "packet_id", p.ID, "err", err)
}

func (s *coreSink) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	for _, p := range batch {
		subj := s.tmpl.render(p)
		if err := checkSubject(subj); err != nil {
			s.drop(s.invalid, p, err)
			continue
		}
		body, err := encodePacket(nil, p)
		if err != nil {
			s.drop(s.rejected, p, err)
			continue
		}
		if err := s.nc.Publish(subj, body); err != nil {
			if s.nc.IsClosed() {
				return fmt.Errorf("node %q: %w", s.env.NodeID, closedErr(s.cfg.ConnConfig, s.nc))
			}
			s.drop(s.rejected, p, fmt.Errorf("subject %s: %w", subj, err))
			continue
		}
		s.published.Add(1)
		if err := out.Emit(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *coreSink) Close(ctx context.Context) error {
	if s.nc == nil {
		return nil
	}
	if s.nc.IsConnected() {
		// What the client buffered goes out before the connection ends.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = s.nc.FlushWithContext(fctx)
		cancel()
	}
	s.nc.Close()
	return nil
}

type coreSource struct {
	cfg CoreSourceConfig
	env plugin.Env
	st  connStats
	nc  *nats.Conn
	sub atomic.Pointer[nats.Subscription]

	*plugin.Counters
	received *plugin.Counter
	dropped  *plugin.Counter // the client's count, stored when the subscription ends
}

// droppedNow is dropped_total: the client counts the drops, so while
// subscribed it is read from the subscription.
func (s *coreSource) droppedNow() int64 {
	if sub := s.sub.Load(); sub != nil {
		if n, err := sub.Dropped(); err == nil {
			return int64(n)
		}
	}
	return s.dropped.Load()
}

func (s *coreSource) Start(context.Context) error {
	nc, err := connect(s.cfg.ConnConfig, s.env.NodeID, s.env.Logger, &s.st)
	if err != nil {
		return fmt.Errorf("node %q: %w", s.env.NodeID, err)
	}
	s.nc = nc
	return nil
}

func (s *coreSource) Run(ctx context.Context, out plugin.Emitter) error {
	ch := make(chan *nats.Msg, s.cfg.Buffer)
	// A subscription made while reconnecting is sent once connected.
	sub, err := s.nc.ChanQueueSubscribe(s.cfg.Subject, s.cfg.Queue, ch)
	if err != nil {
		return fmt.Errorf("node %q: subscribe %s: %w", s.env.NodeID, s.cfg.Subject, err)
	}
	s.sub.Store(sub)
	defer func() {
		if n, err := sub.Dropped(); err == nil {
			s.dropped.Store(int64(n))
		}
		_ = sub.Unsubscribe()
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			s.received.Add(1)
			if err := out.Emit(s.packet(m)); err != nil {
				if errors.Is(err, plugin.ErrStop) {
					return nil
				}
				return err
			}
		}
	}
}

// packet turns a message into a packet: ours as it was sent, anything else
// wrapped.
func (s *coreSource) packet(m *nats.Msg) *packet.Packet {
	if p, err := decodePacket(m.Data); err == nil {
		return p
	}
	var payload any = string(m.Data)
	if v, err := packet.DecodeJSON(m.Data); err == nil {
		payload = v
	}
	src := s.cfg.SourceID
	if src == "" {
		src = m.Subject
	}
	return packet.New(s.cfg.Kind, src, payload, "", packet.MapOf("nats_subject", m.Subject))
}

func (s *coreSource) Close(context.Context) error {
	if s.nc != nil {
		s.nc.Close()
	}
	return nil
}
