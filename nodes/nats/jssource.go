package natsnodes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// JSSourceConfig is JetStreamSource's config.
type JSSourceConfig struct {
	ConnConfig        `yaml:",inline"`
	Stream            string         `yaml:"stream" required:"true" example:"EVENTS" doc:"Stream to consume."`
	Durable           string         `yaml:"durable" required:"true" example:"forwarder" doc:"Durable pull consumer name: created (or updated) at start; every process using the same name shares the messages."`
	FilterSubject     string         `yaml:"filter_subject" example:"events.cam01.>" doc:"Only messages on matching subjects; empty: the whole stream."`
	DeliverPolicy     string         `yaml:"deliver_policy" enum:"all,new,last" doc:"Where a new consumer starts: every message, only new ones, or the last. An existing durable keeps its position."`
	AckWaitSec        plugin.Seconds `yaml:"ack_wait_sec" doc:"A message not acknowledged this long after delivery is delivered again (to any worker)."`
	MaxAckPending     int            `yaml:"max_ack_pending" doc:"Messages delivered and not yet acknowledged, over all workers of the durable."`
	MaxDeliver        int            `yaml:"max_deliver" doc:"Deliveries of one message before it is given up (dead-lettered); -1 is unlimited."`
	Batch             int            `yaml:"batch" doc:"Messages pulled ahead of processing."`
	Follow            bool           `yaml:"follow" doc:"true: run until stopped; false: end once the consumer has nothing pending or unacknowledged."`
	DeadLetterSubject string         `yaml:"dead_letter_subject" example:"dlq.events" doc:"Where a message goes after max_deliver failed deliveries, or when its body is not a schnitzel packet: the original body and headers plus Schnitzel-Error, then the message is terminated. Empty: terminated and counted only."`
	NakDelaySec       plugin.Seconds `yaml:"nak_delay_sec" advanced:"true" doc:"Redelivery delay after a downstream nack: doubles per delivery up to 60 s, with jitter."`
	IdleWaitSec       plugin.Seconds `yaml:"idle_wait_sec" advanced:"true" doc:"How long to wait for a message before checking for the end (follow: false) or the stop."`
	WaitForStream     bool           `yaml:"wait_for_stream" advanced:"true" doc:"A stream that does not exist yet is waited for (retried with backoff, logged) instead of failing the run: for a consumer that may start before the JetStreamSink that creates the stream (a graph cut by a transport: nats edge sets it)."`
}

// Validate checks the keys.
func (c *JSSourceConfig) Validate() error {
	errs := []error{c.ConnConfig.Validate()}
	if strings.TrimSpace(c.Stream) == "" || strings.ContainsAny(c.Stream, " .*>\t") {
		errs = append(errs, plugin.Errorf("stream", "stream %q: want a stream name (no dots, wildcards or spaces)", c.Stream))
	}
	if strings.TrimSpace(c.Durable) == "" || strings.ContainsAny(c.Durable, " .*>\t") {
		errs = append(errs, plugin.Errorf("durable", "durable %q: want a consumer name (no dots, wildcards or spaces)", c.Durable))
	}
	if c.FilterSubject != "" {
		if err := checkFilter(c.FilterSubject); err != nil {
			errs = append(errs, plugin.Errorf("filter_subject", "filter_subject: %v", err))
		}
	}
	if c.DeadLetterSubject != "" {
		if err := checkSubject(c.DeadLetterSubject); err != nil {
			errs = append(errs, plugin.Errorf("dead_letter_subject", "dead_letter_subject: %v", err))
		}
	}
	if c.AckWaitSec <= 0 {
		errs = append(errs, plugin.Errorf("ack_wait_sec", "ack_wait_sec must be > 0"))
	}
	if c.MaxAckPending < 1 {
		errs = append(errs, plugin.Errorf("max_ack_pending", "max_ack_pending must be >= 1"))
	}
	if c.MaxDeliver == 0 || c.MaxDeliver < -1 {
		errs = append(errs, plugin.Errorf("max_deliver", "max_deliver must be >= 1, or -1 for unlimited"))
	}
	if c.Batch < 1 {
		errs = append(errs, plugin.Errorf("batch", "batch must be >= 1"))
	}
	if c.NakDelaySec < 0 {
		errs = append(errs, plugin.Errorf("nak_delay_sec", "nak_delay_sec must be >= 0"))
	}
	if c.IdleWaitSec <= 0 {
		errs = append(errs, plugin.Errorf("idle_wait_sec", "idle_wait_sec must be > 0"))
	}
	return errors.Join(errs...)
}

// Headers on dead letters.
const (
	hdrError    = "Schnitzel-Error"
	hdrStream   = "Schnitzel-Stream"
	hdrSeq      = "Schnitzel-Stream-Seq"
	hdrSubject  = "Schnitzel-Subject"
	hdrDelivers = "Schnitzel-Deliveries"
)

func registerJSSource(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[JSSourceConfig]{
		Name:       mod + "JetStreamSource",
		Role:       plugin.RoleSource,
		OutProfile: plugin.ProfileJSON,
		Summary:    "Consume a NATS JetStream stream with a durable pull consumer (at least once; acks after a downstream commit).",
		Description: `
Messages are decoded from the JSON envelope JetStreamSink writes. With a SqliteQueueSink
downstream (Env.CommitDownstream) a message is acknowledged when the queue committed it, and a
nack from it redelivers the message after a delay; otherwise it is acknowledged once Emit
returned (at least once up to that hand-off). Several processes with the same durable share the
messages; after max_deliver, or for a body that is not a packet, the message goes to
dead_letter_subject and is terminated. See docs/connectors-nats.md.`,
		Stability: plugin.Experimental,
		Metrics: append(slices.Clone(connMetrics),
			plugin.MetricSpec{Name: "received_total", Help: "Messages received (redeliveries included)."},
			plugin.MetricSpec{Name: "acked_total", Help: "Messages acknowledged."},
			plugin.MetricSpec{Name: "nacked_total", Help: "Messages handed back for redelivery (a downstream nack or a stop)."},
			plugin.MetricSpec{Name: "redelivered_total", Help: "Messages received that had been delivered before."},
			plugin.MetricSpec{Name: "dead_letter_total", Help: "Messages given up: dead-lettered (or terminated without dead_letter_subject).", Loss: true},
		),
		Defaults: JSSourceConfig{
			ConnConfig: defaultConn, DeliverPolicy: "all", AckWaitSec: 30, MaxAckPending: 1000,
			MaxDeliver: 5, Batch: 256, Follow: true, NakDelaySec: 1, IdleWaitSec: 1,
		},
		NewSource: func(c JSSourceConfig, env plugin.Env) (plugin.Source, error) {
			cs := env.Counters()
			return &jsSource{cfg: c, env: env, Counters: cs, st: newConnStats(cs),
				received: cs.Get("received_total"), acked: cs.Get("acked_total"), nacked: cs.Get("nacked_total"),
				redelivered: cs.Get("redelivered_total"), dead: cs.Get("dead_letter_total")}, nil
		},
	})
}

type jsSource struct {
	cfg  JSSourceConfig
	env  plugin.Env
	st   connStats
	warn plugin.RateLog

	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer

	*plugin.Counters
	received, acked, nacked, redelivered, dead *plugin.Counter
}

func (s *jsSource) Start(ctx context.Context) error {
	nc, err := connect(s.cfg.ConnConfig, s.env.NodeID, s.env.Logger, &s.st)
	if err != nil {
		return fmt.Errorf("node %q: %w", s.env.NodeID, err)
	}
	s.nc = nc
	if s.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("node %q: jetstream: %w", s.env.NodeID, err)
	}
	if nc.IsConnected() {
		if err := s.consumer(ctx); err != nil && s.permanentSetup(err) {
			return fmt.Errorf("node %q: %w", s.env.NodeID, err)
		}
	}
	return nil
}

// permanentSetup is a consumer setup error that waiting cannot fix; a
// missing stream is one unless wait_for_stream says it will be created.
func (s *jsSource) permanentSetup(err error) bool {
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return !s.cfg.WaitForStream
	}
	return permanent(err)
}

// consumer creates or updates the durable; an existing one whose settings
// cannot change (deliver_policy) is used as it is.
func (s *jsSource) consumer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cc := jetstream.ConsumerConfig{
		Durable: s.cfg.Durable, FilterSubject: s.cfg.FilterSubject,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cfg.AckWaitSec.Duration(),
		MaxAckPending: s.cfg.MaxAckPending, MaxDeliver: s.cfg.MaxDeliver,
	}
	switch s.cfg.DeliverPolicy {
	case "new":
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	case "last":
		cc.DeliverPolicy = jetstream.DeliverLastPolicy
	default:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	c, err := s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, cc)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %q: %w", s.cfg.Stream, err)
		}
		existing, err2 := s.js.Consumer(ctx, s.cfg.Stream, s.cfg.Durable)
		if err2 != nil {
			return fmt.Errorf("stream %q consumer %q: %w", s.cfg.Stream, s.cfg.Durable, err)
		}
		s.env.Logger.Warn("consumer exists with settings that cannot change: using it as it is", "stream", s.cfg.Stream, "durable", s.cfg.Durable, "err", err)
		c = existing
	}
	s.cons = c
	return nil
}

// Run pulls until ctx ends, Emit says stop, or (follow: false) the
// consumer has nothing left.
func (s *jsSource) Run(ctx context.Context, out plugin.Emitter) error {
	for attempt := 1; s.cons == nil; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		if s.nc.IsClosed() {
			return fmt.Errorf("node %q: %w", s.env.NodeID, closedErr(s.cfg.ConnConfig, s.nc))
		}
		if s.nc.IsConnected() {
			err := s.consumer(ctx)
			if err != nil && s.permanentSetup(err) {
				return fmt.Errorf("node %q: %w", s.env.NodeID, err)
			}
			if err != nil {
				s.warn.Warn(s.env.Logger, "consumer setup failed, retrying", "stream", s.cfg.Stream, "durable", s.cfg.Durable, "err", err)
			}
		}
		if s.cons == nil && !sleepCtx(ctx, plugin.Backoff(attempt, 100*time.Millisecond, 5*time.Second, rand.Float64())) {
			return nil
		}
	}
	it, err := s.cons.Messages(jetstream.PullMaxMessages(s.cfg.Batch))
	if err != nil {
		return fmt.Errorf("node %q: pull from stream %q consumer %q: %w", s.env.NodeID, s.cfg.Stream, s.cfg.Durable, err)
	}
	// One goroutine blocks in Next (no per-message context or timer: they
	// cost a third of the consume rate); Run waits on it with one timer
	// that runs only while nothing is at hand.
	ch := make(chan pulled)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			select {
			case ch <- pulled{m, err}:
			case <-done:
				if m != nil {
					_ = m.Nak() // pulled, never emitted: offer it again now
				}
				return
			}
		}
	})
	// What the iterator pulled ahead and we did not emit comes back to
	// another worker after ack_wait.
	defer func() {
		close(done)
		it.Stop()
		wg.Wait()
	}()
	commit := s.env.CommitDownstream
	idle := time.NewTimer(s.cfg.IdleWaitSec.Duration())
	defer idle.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		var r pulled
		select {
		case r = <-ch:
		default:
			if s.nc.IsClosed() {
				return fmt.Errorf("node %q: %w", s.env.NodeID, closedErr(s.cfg.ConnConfig, s.nc))
			}
			idle.Reset(s.cfg.IdleWaitSec.Duration())
			select {
			case r = <-ch:
			case <-ctx.Done():
				return nil
			case <-idle.C:
				if !s.cfg.Follow && s.drained(ctx) {
					return nil
				}
				continue
			}
		}
		if r.err != nil {
			s.warn.Warn(s.env.Logger, "pull failed", "stream", s.cfg.Stream, "durable", s.cfg.Durable, "err", r.err)
			continue
		}
		if err := s.handle(ctx, r.msg, commit, out); err != nil {
			if errors.Is(err, plugin.ErrStop) {
				return nil
			}
			return err
		}
	}
}

type pulled struct {
	msg jetstream.Msg
	err error
}

// drained reports whether the consumer has nothing pending and nothing
// delivered but unacknowledged (which may yet come back to us).
func (s *jsSource) drained(ctx context.Context) bool {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := s.cons.Info(ictx)
	if err != nil {
		return false
	}
	return info.NumPending == 0 && info.NumAckPending == 0
}

func (s *jsSource) handle(ctx context.Context, msg jetstream.Msg, commit bool, out plugin.Emitter) error {
	s.received.Add(1)
	md, err := msg.Metadata()
	if err != nil {
		s.deadLetter(ctx, msg, nil, fmt.Errorf("no JetStream metadata: %w", err))
		return nil
	}
	if md.NumDelivered > 1 {
		s.redelivered.Add(1)
	}
	p, err := decodePacket(msg.Data())
	if err != nil {
		s.deadLetter(ctx, msg, md, fmt.Errorf("body is not a schnitzel packet: %w", err))
		return nil
	}
	if commit {
		var once sync.Once
		p.Ack = func() {
			once.Do(func() {
				if err := msg.Ack(); err != nil {
					s.warn.Warn(s.env.Logger, "ack failed (the message comes back after ack_wait)", "seq", md.Sequence.Stream, "err", err)
					return
				}
				s.acked.Add(1)
			})
		}
		p.Nack = func(cause error) {
			once.Do(func() {
				if packet.IsPermanent(cause) || (s.cfg.MaxDeliver > 0 && md.NumDelivered >= uint64(s.cfg.MaxDeliver)) {
					s.deadLetter(context.Background(), msg, md, cause)
					return
				}
				s.nacked.Add(1)
				d := plugin.Backoff(int(md.NumDelivered), s.cfg.NakDelaySec.Duration(), 60*time.Second, rand.Float64())
				_ = msg.NakWithDelay(d)
			})
		}
	}
	if err := out.Emit(p); err != nil {
		// Not taken: offer it again at once.
		s.nacked.Add(1)
		_ = msg.Nak()
		return err
	}
	if !commit {
		if err := msg.Ack(); err != nil {
			s.warn.Warn(s.env.Logger, "ack failed (the message comes back after ack_wait)", "seq", md.Sequence.Stream, "err", err)
		} else {
			s.acked.Add(1)
		}
	}
	return nil
}

// deadLetter publishes the original message with the reason to
// dead_letter_subject (stored by JetStream when a stream takes the
// subject, else plain NATS) and terminates it, so that it is not
// delivered again.
func (s *jsSource) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, cause error) {
	s.dead.Add(1)
	reason := "error"
	if cause != nil {
		reason = cause.Error()
	}
	if s.cfg.DeadLetterSubject != "" {
		dl := &nats.Msg{Subject: s.cfg.DeadLetterSubject, Data: msg.Data(), Header: nats.Header{}}
		for k, v := range msg.Headers() {
			if k == jetstream.MsgIDHeader || strings.HasPrefix(k, "Nats-Expected") {
				continue // a dead letter must not be deduplicated against the original
			}
			dl.Header[k] = v
		}
		dl.Header.Set(hdrError, reason)
		dl.Header.Set(hdrSubject, msg.Subject())
		if md != nil {
			dl.Header.Set(hdrStream, md.Stream)
			dl.Header.Set(hdrSeq, strconv.FormatUint(md.Sequence.Stream, 10))
			dl.Header.Set(hdrDelivers, strconv.FormatUint(md.NumDelivered, 10))
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, err := s.js.PublishMsg(pctx, dl)
		cancel()
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			err = s.nc.PublishMsg(dl) // no stream takes it: core NATS
		}
		if err != nil {
			// Not terminated: it comes back after ack_wait and is tried again.
			s.warn.Warn(s.env.Logger, "dead letter not published", "subject", s.cfg.DeadLetterSubject, "err", err)
			return
		}
	}
	s.warn.Warn(s.env.Logger, "message dead-lettered", "subject", msg.Subject(), "dead_letter_subject", s.cfg.DeadLetterSubject, "reason", reason)
	_ = msg.TermWithReason(reason)
}

func (s *jsSource) Close(context.Context) error {
	if s.nc != nil {
		s.nc.Close()
	}
	return nil
}

// sleepCtx waits d or until ctx ends; it reports whether the full wait
// happened.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
