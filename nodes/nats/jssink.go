package natsnodes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// JSSinkConfig is JetStreamSink's config.
type JSSinkConfig struct {
	ConnConfig         `yaml:",inline"`
	Subject            string         `yaml:"subject" required:"true" example:"events.{source_id}.{kind}" doc:"Subject to publish on; {source_id}, {kind}, {packet_id}, {payload.x}, {meta.y} are replaced by the packet's fields. A packet whose subject comes out invalid (empty token, white space, wildcard) is dropped and counted."`
	Stream             string         `yaml:"stream" example:"EVENTS" doc:"Stream the subject belongs to: checked (or created) at Start, and every publish expects it (a message another stream would take is refused). Empty: whatever stream holds the subject."`
	CreateStream       bool           `yaml:"create_stream" doc:"Create stream when it does not exist, with the settings below."`
	StreamSubjects     []string       `yaml:"stream_subjects" example:"events.>" doc:"Subjects of a created stream, and what an existing one must cover; empty: the subject with each {field} token as *."`
	Replicas           int            `yaml:"replicas" doc:"Replicas of a created stream (1, or 3 in a cluster)."`
	Storage            string         `yaml:"storage" enum:"file,memory" doc:"Storage of a created stream."`
	MaxAgeSec          plugin.Seconds `yaml:"max_age_sec" doc:"Created stream: messages older than this are removed; 0 keeps them."`
	MaxBytes           int64          `yaml:"max_bytes" doc:"Created stream: size limit in bytes (oldest removed first); 0 is unlimited."`
	DuplicateWindowSec plugin.Seconds `yaml:"duplicate_window_sec" doc:"Created stream: how long the server remembers a Nats-Msg-Id, so that a replayed packet is stored once."`
	MaxPending         int            `yaml:"max_pending" doc:"Publishes in flight (sent, PubAck not yet received)."`
	TimeoutSec         plugin.Seconds `yaml:"timeout_sec" doc:"Wait for one PubAck (and for stream API calls) before retrying the publish."`
	RetryBackoffSec    plugin.Seconds `yaml:"retry_backoff_sec" advanced:"true" doc:"First wait before publishing again after a timeout or no responders; doubles up to retry_max_backoff_sec, with jitter."`
	RetryMaxBackoffSec plugin.Seconds `yaml:"retry_max_backoff_sec" advanced:"true" doc:"Longest wait between publish retries."`
}

// Validate checks the keys.
func (c *JSSinkConfig) Validate() error {
	errs := []error{c.ConnConfig.Validate()}
	if _, err := parseSubject(c.Subject); err != nil {
		errs = append(errs, plugin.Errorf("subject", "subject: %v", err))
	}
	if c.CreateStream && c.Stream == "" {
		errs = append(errs, plugin.Errorf("stream", "create_stream needs a stream name"))
	}
	if strings.ContainsAny(c.Stream, " .*>\t") {
		errs = append(errs, plugin.Errorf("stream", "stream %q: a stream name has no dots, wildcards or spaces", c.Stream))
	}
	for _, s := range c.StreamSubjects {
		if err := checkFilter(s); err != nil {
			errs = append(errs, plugin.Errorf("stream_subjects", "stream_subjects: %v", err))
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, plugin.Errorf("replicas", "replicas must be 1..5 (got %d)", c.Replicas))
	}
	if c.MaxAgeSec < 0 || c.DuplicateWindowSec < 0 || c.MaxBytes < 0 {
		errs = append(errs, plugin.Errorf("max_age_sec", "max_age_sec, max_bytes and duplicate_window_sec must be >= 0"))
	}
	if c.MaxPending < 1 {
		errs = append(errs, plugin.Errorf("max_pending", "max_pending must be >= 1 (got %d)", c.MaxPending))
	}
	if c.TimeoutSec <= 0 {
		errs = append(errs, plugin.Errorf("timeout_sec", "timeout_sec must be > 0"))
	}
	if c.RetryBackoffSec < 0 || c.RetryMaxBackoffSec < c.RetryBackoffSec {
		errs = append(errs, plugin.Errorf("retry_backoff_sec", "need 0 <= retry_backoff_sec <= retry_max_backoff_sec"))
	}
	return errors.Join(errs...)
}

// streamSubjects is what the stream must hold: stream_subjects, or the
// subject with each templated token as *.
func (c *JSSinkConfig) streamSubjects() ([]string, error) {
	if len(c.StreamSubjects) > 0 {
		return c.StreamSubjects, nil
	}
	t, err := parseSubject(c.Subject)
	if err != nil {
		return nil, err
	}
	// Fields become a NUL each; a token that is exactly one field is *.
	var b strings.Builder
	for _, pt := range t.parts {
		if pt.root == "" {
			b.WriteString(pt.lit)
		} else {
			b.WriteByte(0)
		}
	}
	toks := strings.Split(b.String(), ".")
	for i, tok := range toks {
		switch {
		case tok == "\x00":
			toks[i] = "*"
		case strings.ContainsRune(tok, 0):
			return nil, fmt.Errorf("subject %q: cannot derive the stream's subjects from it (a {field} shares a token): set stream_subjects", c.Subject)
		}
	}
	return []string{strings.Join(toks, ".")}, nil
}

func registerJSSink(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[JSSinkConfig]{
		Name:      mod + "JetStreamSink",
		Role:      plugin.RoleSink,
		InProfile: plugin.ProfileJSON,
		Summary:   "Publish packets to a NATS JetStream stream (async, PubAck-confirmed, deduplicated by idempotency key).",
		Description: `
Each packet is published as its portable JSON envelope with header Nats-Msg-Id = its idempotency
key (meta.idempotency_key, else packet_id: the SQLite queue's key), so that a replay within the
stream's duplicate window is stored once. A batch is published asynchronously (max_pending in
flight); a packet is emitted downstream only once its PubAck arrived, so
SqliteQueueSource → JetStreamSink → SqliteQueueAckSink acks the local queue after the server has it.
Timeouts, no responders and disconnects are retried with backoff until they succeed or the run
stops (then the packets not acknowledged are nacked). See docs/connectors-nats.md.`,
		Stability: plugin.Experimental,
		Metrics: append(slices.Clone(connMetrics),
			plugin.MetricSpec{Name: "published_total", Help: "Packets the server acknowledged (PubAck)."},
			plugin.MetricSpec{Name: "duplicate_total", Help: "PubAcks that said duplicate: the stream already held the message id."},
			plugin.MetricSpec{Name: "retry_total", Help: "Publishes sent again after a timeout, no responders or a disconnect."},
			plugin.MetricSpec{Name: "invalid_subject_total", Help: "Packets dropped: their subject came out empty or invalid.", Loss: true},
			plugin.MetricSpec{Name: "rejected_total", Help: "Packets dropped: not portable JSON, too large, or refused by the server for good.", Loss: true},
			plugin.MetricSpec{Name: "interrupted_total", Help: "Packets left unacknowledged by a stop (nacked to their origin).", Loss: true},
		),
		Defaults: JSSinkConfig{
			ConnConfig: defaultConn, Replicas: 1, Storage: "file", DuplicateWindowSec: 120,
			MaxPending: 256, TimeoutSec: 5, RetryBackoffSec: 0.2, RetryMaxBackoffSec: 5,
		},
		NewBatchProcessor: func(c JSSinkConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			t, err := parseSubject(c.Subject)
			if err != nil {
				return nil, err
			}
			cs := env.Counters()
			return &jsSink{cfg: c, env: env, tmpl: t, stop: make(chan struct{}), Counters: cs, st: newConnStats(cs),
				published: cs.Get("published_total"), duplicates: cs.Get("duplicate_total"), retries: cs.Get("retry_total"),
				invalid: cs.Get("invalid_subject_total"), rejected: cs.Get("rejected_total"), interrupted: cs.Get("interrupted_total")}, nil
		},
	})
}

type jsSink struct {
	cfg  JSSinkConfig
	env  plugin.Env
	tmpl subjectTemplate
	st   connStats
	warn plugin.RateLog

	nc      *nats.Conn
	js      jetstream.JetStream
	ensured bool
	// subjects of the checked stream; nil: not known (no stream key).
	subjects []string

	stop     chan struct{}
	stopOnce sync.Once

	*plugin.Counters
	published, duplicates, retries, invalid, rejected, interrupted *plugin.Counter

	msgs []*pubItem
}

type pubItem struct {
	p   *packet.Packet
	msg *nats.Msg
	paf jetstream.PubAckFuture
	err error
	ok  bool
}

func (s *jsSink) Start(ctx context.Context) error {
	nc, err := connect(s.cfg.ConnConfig, s.env.NodeID, s.env.Logger, &s.st)
	if err != nil {
		return fmt.Errorf("node %q: %w", s.env.NodeID, err)
	}
	s.nc = nc
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(s.cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(s.cfg.TimeoutSec.Duration()))
	if err != nil {
		return fmt.Errorf("node %q: jetstream: %w", s.env.NodeID, err)
	}
	s.js = js
	// With the server up, a stream with other subjects fails the start;
	// with it down, the check waits for the first batch.
	if nc.IsConnected() {
		if err := s.ensureStream(ctx); err != nil {
			if errors.Is(err, errStreamMismatch) {
				return fmt.Errorf("node %q: %w", s.env.NodeID, err)
			}
			// A timeout or a cluster without a leader yet: the first
			// batch checks again.
			s.env.Logger.Warn("stream check failed, will retry", "stream", s.cfg.Stream, "err", err)
		}
	}
	return nil
}

// errStreamMismatch is a stream whose configuration cannot take our
// subjects: retrying cannot fix it.
var errStreamMismatch = errors.New("stream mismatch")

// ensureStream checks (or creates) the configured stream once.
func (s *jsSink) ensureStream(ctx context.Context) error {
	if s.ensured || s.cfg.Stream == "" {
		s.ensured = true
		return nil
	}
	want, err := s.cfg.streamSubjects()
	if err != nil {
		return fmt.Errorf("%w: %v", errStreamMismatch, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TimeoutSec.Duration())
	defer cancel()
	st, err := s.js.Stream(ctx, s.cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && s.cfg.CreateStream:
		sc := jetstream.StreamConfig{
			Name: s.cfg.Stream, Subjects: want, Replicas: s.cfg.Replicas,
			Storage: jetstream.FileStorage, MaxAge: s.cfg.MaxAgeSec.Duration(),
			MaxBytes: -1, Duplicates: s.cfg.DuplicateWindowSec.Duration(),
		}
		if s.cfg.Storage == "memory" {
			sc.Storage = jetstream.MemoryStorage
		}
		if s.cfg.MaxBytes > 0 {
			sc.MaxBytes = s.cfg.MaxBytes
		}
		if _, err := s.js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %q (subjects %v): %w", s.cfg.Stream, want, err)
		}
		s.env.Logger.Info("stream created", "stream", s.cfg.Stream, "subjects", want, "replicas", s.cfg.Replicas, "storage", s.cfg.Storage)
		if st, err = s.js.Stream(ctx, s.cfg.Stream); err != nil {
			return fmt.Errorf("stream %q: %w", s.cfg.Stream, err)
		}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w: stream %q does not exist (create it, or set create_stream: true)", errStreamMismatch, s.cfg.Stream)
	case err != nil:
		return fmt.Errorf("stream %q: %w", s.cfg.Stream, err)
	}
	have := st.CachedInfo().Config.Subjects
	for _, w := range want {
		covered := false
		for _, h := range have {
			covered = covered || subjectCovers(h, w)
		}
		if !covered {
			return fmt.Errorf("%w: stream %q exists with subjects %v, which do not cover %q (the subject %q publishes on)", errStreamMismatch, s.cfg.Stream, have, w, s.cfg.Subject)
		}
	}
	s.subjects = have
	s.ensured = true
	return nil
}

// inStream reports whether the stream takes subj (always, when no stream
// is configured): a message outside it would only get no responders.
func (s *jsSink) inStream(subj string) bool {
	if s.subjects == nil {
		return true
	}
	for _, h := range s.subjects {
		if subjectCovers(h, subj) {
			return true
		}
	}
	return false
}

// subjectCovers reports whether filter f matches every subject that
// pattern w matches.
func subjectCovers(f, w string) bool {
	ft, wt := strings.Split(f, "."), strings.Split(w, ".")
	for i, t := range ft {
		if t == ">" {
			return len(wt) > i
		}
		if i >= len(wt) {
			return false
		}
		switch {
		case t == "*":
			if wt[i] == ">" {
				return false
			}
		case t != wt[i]:
			return false
		}
	}
	return len(ft) == len(wt)
}

func (s *jsSink) Stopping() { s.stopOnce.Do(func() { close(s.stop) }) }

// drop loses one packet for good: counted, logged, nacked as permanent so
// a durable origin dead-letters it instead of offering it again.
func (s *jsSink) drop(ctr *plugin.Counter, p *packet.Packet, err error) {
	ctr.Add(1)
	s.warn.Warn(s.env.Logger, "packet dropped", "packet_id", p.ID, "err", err)
	if p.Nack != nil {
		p.Nack(packet.Permanent(err))
	}
}

// ProcessBatch publishes the batch, waits for every PubAck (retrying what
// failed) and emits each packet once the server has it.
func (s *jsSink) ProcessBatch(ctx context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	if s.nc.IsClosed() {
		return fmt.Errorf("node %q: %w", s.env.NodeID, closedErr(s.cfg.ConnConfig, s.nc))
	}
	items := s.msgs[:0]
	for _, p := range batch {
		subj := s.tmpl.render(p)
		if err := checkSubject(subj); err != nil {
			s.drop(s.invalid, p, err)
			continue
		}
		if !s.inStream(subj) {
			s.drop(s.invalid, p, fmt.Errorf("subject %q is not one of stream %q's subjects %v", subj, s.cfg.Stream, s.subjects))
			continue
		}
		key, err := queue.Key(p, "")
		if err != nil {
			s.drop(s.rejected, p, err)
			continue
		}
		body, err := encodePacket(nil, p)
		if err != nil {
			s.drop(s.rejected, p, err)
			continue
		}
		m := &nats.Msg{Subject: subj, Data: body, Header: nats.Header{jetstream.MsgIDHeader: []string{key}}}
		if s.cfg.Stream != "" {
			m.Header.Set(jetstream.ExpectedStreamHeader, s.cfg.Stream)
		}
		items = append(items, &pubItem{p: p, msg: m})
	}
	s.msgs = items[:0]
	for attempt := 0; len(items) > 0; attempt++ {
		if attempt > 0 {
			wait := plugin.Backoff(attempt, s.cfg.RetryBackoffSec.Duration(), s.cfg.RetryMaxBackoffSec.Duration(), rand.Float64())
			if !s.sleep(ctx, wait) {
				return s.interrupt(items, ctx.Err())
			}
			s.retries.Add(int64(len(items)))
		}
		if s.nc.IsClosed() {
			return fmt.Errorf("node %q: %w", s.env.NodeID, closedErr(s.cfg.ConnConfig, s.nc))
		}
		if !s.ensured {
			if err := s.ensureStream(ctx); err != nil {
				if errors.Is(err, errStreamMismatch) {
					return fmt.Errorf("node %q: %w", s.env.NodeID, err)
				}
				s.warn.Warn(s.env.Logger, "stream check failed, retrying", "stream", s.cfg.Stream, "err", err)
				continue
			}
		}
		if err := s.publish(ctx, items); err != nil {
			return s.interrupt(items, err)
		}
		left := items[:0]
		for _, it := range items {
			switch {
			case it.ok:
				if err := out.Emit(it.p); err != nil {
					return err
				}
			case permanent(it.err):
				s.drop(s.rejected, it.p, fmt.Errorf("subject %s: %w", it.msg.Subject, it.err))
			default:
				s.warn.Warn(s.env.Logger, "publish not acknowledged, retrying", "subject", it.msg.Subject, "packet_id", it.p.ID, "err", it.err)
				it.paf, it.err = nil, nil
				left = append(left, it)
			}
		}
		items = left
	}
	return nil
}

// publish sends items with at most max_pending in flight and waits for
// their outcomes; it returns an error only when ctx ends.
func (s *jsSink) publish(ctx context.Context, items []*pubItem) error {
	inflight := 0
	oldest := 0
	for _, it := range items {
		for inflight >= s.cfg.MaxPending {
			if err := s.await(ctx, items[oldest]); err != nil {
				return err
			}
			if items[oldest].paf != nil {
				inflight--
			}
			oldest++
		}
		// The message is sent again on retries: a fresh copy, since the
		// client sets its reply subject.
		m := &nats.Msg{Subject: it.msg.Subject, Data: it.msg.Data, Header: it.msg.Header}
		paf, err := s.js.PublishMsgAsync(m)
		if err != nil {
			it.err = err
			continue
		}
		it.paf = paf
		inflight++
	}
	for ; oldest < len(items); oldest++ {
		if err := s.await(ctx, items[oldest]); err != nil {
			return err
		}
	}
	return nil
}

func (s *jsSink) await(ctx context.Context, it *pubItem) error {
	if it.paf == nil || it.ok || it.err != nil {
		return nil
	}
	select {
	case ack := <-it.paf.Ok():
		it.ok = true
		s.published.Add(1)
		if ack.Duplicate {
			s.duplicates.Add(1)
		}
	case err := <-it.paf.Err():
		it.err = err
	case <-ctx.Done():
		// A graceful stop (Stopping) still waits for PubAcks in flight:
		// they take one timeout_sec at most.
		return ctx.Err()
	}
	return nil
}

// permanent reports a publish error that retrying cannot fix.
func permanent(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		// 503 is no responders (retried); 400 is a bad request, such as a
		// message the expected stream does not take.
		return api.Code == 400
	}
	return false
}

// interrupt hands back what a stop left unacknowledged. Packets already
// acknowledged were emitted.
func (s *jsSink) interrupt(items []*pubItem, err error) error {
	n := 0
	for _, it := range items {
		if it.ok {
			continue
		}
		n++
		if it.p.Nack != nil {
			it.p.Nack(fmt.Errorf("node %q: stopped before the PubAck: %w", s.env.NodeID, err))
		}
	}
	s.interrupted.Add(int64(n))
	if n > 0 {
		s.env.Logger.Warn("stopped with publishes unacknowledged: nacked", "packets", n, "err", err)
	}
	return nil
}

func (s *jsSink) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

func (s *jsSink) Close(context.Context) error {
	if s.nc != nil {
		s.nc.Close()
	}
	return nil
}
