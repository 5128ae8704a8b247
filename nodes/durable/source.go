package durable

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SourceConfig is SqliteQueueSource's config.
type SourceConfig struct {
	Path               string         `yaml:"path" required:"true" doc:"SQLite queue file, relative to the working directory."`
	Limit              int            `yaml:"limit" doc:"Rows per read. Without follow or drain the source reads one batch of this many rows and ends, as upstream; 0 or less reads nothing."`
	DeleteOnEmit       bool           `yaml:"delete_on_emit" doc:"Delete rows once the runtime accepted them (at-most-once downstream; rows not accepted, e.g. past --max-events, stay queued)."`
	MetaKey            string         `yaml:"meta_key" doc:"Meta key of the durable block ({queue, path, seq, node_id, queue_id, attempt}) on emitted packets."`
	Follow             bool           `yaml:"follow" doc:"Keep reading for ever: an always-on forwarder. Wakes at once on rows enqueued in this process and polls the file every poll_interval_sec for other writers."`
	Drain              bool           `yaml:"drain" doc:"Without follow: read batches until the queue has no available row, then end (instead of upstream's single batch)."`
	PollIntervalSec    plugin.Seconds `yaml:"poll_interval_sec" advanced:"true" doc:"With follow: how often an idle source looks for rows written by other processes."`
	Consumer           string         `yaml:"consumer" doc:"Name of this reader: its leases are stored under it, and a lock file next to the queue (<path>.consumers/<name>.lock) proves it alive. Two live processes cannot share a consumer name: the second refuses to start. Default: the node id and a hash of the absolute queue path, so the same graph restarted is the same consumer and takes back at once what its killed run held."`
	LeaseSec           plugin.Seconds `yaml:"lease_sec" advanced:"true" doc:"Lease of a read row, renewed every lease_sec/3 while this process lives (so a slow but live reader never loses it). Only matters when the owner hangs or its liveness cannot be seen; an expired lease of an emitted row counts as a failed attempt. (0, 86400]."`
	MaxInFlight        int            `yaml:"max_in_flight" doc:"With an ack sink on the same file in the graph: at most this many rows are leased and not yet acked, nacked or released at a time, whatever limit says; the source waits for acks before it leases more. 1..1000000."`
	MaxAttempts        int            `yaml:"max_attempts" doc:"Failed attempts (nacks, give-ups, dying while delivering the row) after which a row moves to the dead-letter table. A nack marked permanent (e.g. a receiver's 4xx) moves it at once."`
	RetryBackoffSec    plugin.Seconds `yaml:"retry_backoff_sec" doc:"Delay before a nacked row is offered again; doubles per failed attempt."`
	RetryBackoffMaxSec plugin.Seconds `yaml:"retry_backoff_max_sec" doc:"Upper bound of the retry delay."`
	DedupWindowSec     plugin.Seconds `yaml:"dedup_window_sec" doc:"With delete_on_emit: how long a deleted row's key stays known so a replay is not stored again; negative disables."`
	DeadRetentionSec   plugin.Seconds `yaml:"dead_retention_sec" doc:"How long dead letters are kept; negative keeps them until purged."`
}

// Validate implements the plugin config check.
func (c *SourceConfig) Validate() error {
	var errs []error // all of them, so one validation shows every problem
	if err := checkPath(c.Path); err != nil {
		errs = append(errs, err)
	}
	if c.Follow && c.Limit <= 0 {
		errs = append(errs, plugin.Errorf("limit", "must be > 0 with follow: true"))
	}
	if c.Limit > 1_000_000_000 {
		errs = append(errs, plugin.Errorf("limit", "must be <= 1000000000, got %d", c.Limit))
	}
	if err := secRange("lease_sec", c.LeaseSec, false, 86400); err != nil {
		errs = append(errs, err)
	}
	if err := secRange("poll_interval_sec", c.PollIntervalSec, false, 3600); err != nil {
		errs = append(errs, err)
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1_000_000 {
		errs = append(errs, plugin.Errorf("max_in_flight", "must be in 1..1000000, got %d", c.MaxInFlight))
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 1_000_000 {
		errs = append(errs, plugin.Errorf("max_attempts", "must be in 1..1000000, got %d", c.MaxAttempts))
	}
	if err := secRange("retry_backoff_sec", c.RetryBackoffSec, true, 86400); err != nil {
		errs = append(errs, err)
	}
	if err := secRange("retry_backoff_max_sec", c.RetryBackoffMaxSec, true, 86400); err != nil {
		errs = append(errs, err)
	}
	if err := retention("dedup_window_sec", c.DedupWindowSec); err != nil {
		errs = append(errs, err)
	}
	if err := retention("dead_retention_sec", c.DeadRetentionSec); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.Consumer) != c.Consumer || len(c.Consumer) > 200 {
		errs = append(errs, plugin.Errorf("consumer", "must be a name without leading or trailing spaces, at most 200 bytes"))
	}
	return errors.Join(errs...)
}

func registerSource(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[SourceConfig]{
		Name: mod + "SqliteQueueSource",
		Role: plugin.RoleSource,
		// rows hold JSON, possibly with references to stored blobs (upstream)
		InProfile: plugin.ProfileJSON, OutProfile: plugin.ProfileRef,
		Out:     []string{"*"},
		Summary: "Emit queued packets from a SQLite queue file, under a lease, for an ack sink to delete.",
		Description: `
Rows are leased, not just read: no other reader (node or process) gets them until they are acked
(SqliteQueueAckSink), nacked (a failed packet: retried with backoff, dead-lettered after
max_attempts, at once when the nack is permanent), or released. The lease belongs to a live
consumer (a lock file next to the queue): it is renewed while the process lives, and when a
consumer starts, rows that a dead one held (its own killed run included) come back at once,
charged an attempt only if they had been emitted. On a clean stop the source gives its unacked
rows back at once, so a drain graph without an ack replays them on the next run, as upstream.
By default the source reads one batch of limit rows and ends, as upstream's run(); drain: true
reads until nothing is left, follow: true never ends. Emitted packets keep their stored packet_id
and ts and carry meta[meta_key] = {queue, path, seq, node_id, queue_id, attempt}.`,
		Defaults: SourceConfig{
			Limit: 100, MetaKey: "durable", PollIntervalSec: 1, LeaseSec: 30, MaxInFlight: 1024, MaxAttempts: 5,
			RetryBackoffSec: 1, RetryBackoffMaxSec: 300, DedupWindowSec: 86400, DeadRetentionSec: 7 * 86400,
		},
		Metrics: []plugin.MetricSpec{
			{Name: "emitted_total", Help: "Rows emitted as packets (a row emitted again after a nack or a lost lease counts again)."},
			{Name: "queue_depth", Help: "Rows in the queue file now (leased or not; dead letters excluded).", Gauge: true},
			{Name: "nacked_total", Help: "Emitted packets nacked downstream: retried with backoff or, past max_attempts, dead-lettered."},
			{Name: "dead_lettered_total", Help: "Rows this source moved to the dead-letter table (out of attempts, permanent nack, undecodable).", Loss: true},
			{Name: "leased_elsewhere", Help: "Rows other live consumers of the file held at the last sweep.", Gauge: true},
		},
		NewSource: func(c SourceConfig, env plugin.Env) (plugin.Source, error) {
			return &source{cfg: c, env: env, path: pyPath(c.Path), warn: plugin.RateLog{Burst: 5}, dead: plugin.RateLog{Burst: 5}}, nil
		},
	})
}

type source struct {
	cfg  SourceConfig
	env  plugin.Env
	path string
	q    *queue.Queue
	warn plugin.RateLog // per-packet problems: burst of 5, then one line per 10 s
	dead plugin.RateLog
	// qm is q for Metrics, which runs on another goroutine, also while
	// Start is still opening the file (serve's snapshots).
	qm atomic.Pointer[queue.Queue]

	emitted, nacked atomic.Int64
}

// secRange checks a number of seconds: > 0 (>= 0 when zeroOK) and <= hi.
func secRange(key string, v plugin.Seconds, zeroOK bool, hi plugin.Seconds) error {
	lo := "> 0"
	ok := v > 0
	if zeroOK {
		lo, ok = ">= 0", v >= 0
	}
	if !ok || !(v <= hi) {
		return plugin.Errorf(key, "must be %s and <= %g seconds, got %g", lo, hi, v)
	}
	return nil
}

// maxRetentionSec bounds retention settings (ten years); negative means
// "keep" or "off" as each key says.
const maxRetentionSec = 10 * 365 * 86400

func retention(key string, v plugin.Seconds) error {
	if v != v || v > maxRetentionSec {
		return plugin.Errorf(key, "must be <= %d seconds (ten years), or negative, got %g", maxRetentionSec, v)
	}
	return nil
}

// defaultConsumer names a source that has no consumer key: the node id
// and a hash of the absolute queue path, so the same graph restarted is
// the same consumer.
func defaultConsumer(nodeID, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(filepath.Clean(abs)))
	return nodeID + "@" + hex.EncodeToString(sum[:4])
}

func (s *source) Start(context.Context) error {
	dedup := s.cfg.DedupWindowSec.Duration()
	if s.cfg.DedupWindowSec < 0 {
		dedup = -1
	}
	ret := s.cfg.DeadRetentionSec.Duration()
	if s.cfg.DeadRetentionSec < 0 {
		ret = -1
	}
	consumer := s.cfg.Consumer
	if consumer == "" {
		consumer = defaultConsumer(s.env.NodeID, s.cfg.Path)
	}
	q, err := queue.Open(s.cfg.Path, queue.Options{
		MaxAttempts: s.cfg.MaxAttempts, RetryBackoff: s.cfg.RetryBackoffSec.Duration(), RetryBackoffMax: s.cfg.RetryBackoffMaxSec.Duration(),
		DedupWindow: dedup, DeadRetention: ret, Consumer: consumer, Logger: s.env.Logger,
		OnDead: func(seq int64, reason string) {
			s.dead.Warn(s.env.Logger, "row moved to the dead-letter table", "path", s.cfg.Path, "seq", seq, "reason", reason)
		},
	})
	if err != nil {
		return err
	}
	s.q = q
	s.qm.Store(q)
	rep := q.StartReport()
	if rep.Released+rep.Charged > 0 {
		s.env.Logger.Info("took back rows a dead reader left leased", "path", s.cfg.Path,
			"released_unemitted", rep.Released, "charged_an_attempt", rep.Charged, "dead_lettered", rep.Dead)
	}
	for _, o := range rep.Elsewhere {
		s.env.Logger.Warn("rows are leased by another live consumer; this source will not get them until it acks or releases them",
			"path", s.cfg.Path, "rows", o.Rows, "owner", o.Owner, "lease_until", o.Until)
	}
	return nil
}

func (s *source) Run(ctx context.Context, out plugin.Emitter) error {
	if s.cfg.Limit <= 0 {
		return nil // upstream: read(limit<=0) returns nothing
	}
	var acks []queue.Ref
	for {
		if ctx.Err() != nil {
			return nil
		}
		got, err := s.read(ctx, out, &acks)
		if err != nil || got < 0 {
			return err // got < 0: the runtime stopped taking packets
		}
		if got == 0 {
			if !s.cfg.Follow {
				return nil
			}
			s.q.Wait(ctx, s.cfg.PollIntervalSec.Duration())
			continue
		}
		if !s.cfg.Follow && !s.cfg.Drain {
			return nil
		}
	}
}

// leasePart is the most rows one lease takes; loadPart is how many rows
// are read and handed on at a time.
const (
	leasePart = 8192
	loadPart  = 1024
)

// part is a run of leased rows, loaded (read and decoded) or not.
type part struct {
	msgs []queue.Message
	err  error
}

// read is one read of up to limit rows in three stages: a goroutine
// leases them part by part, a second one reads and decodes them, and
// this one emits them; so leasing (the writer), reading (a reader
// connection) and the runtime's work, including the acks of earlier rows,
// overlap. It returns the rows emitted, or -1 when the runtime stopped
// taking packets. Rows leased but not emitted are released.
func (s *source) read(ctx context.Context, out plugin.Emitter, acks *[]queue.Ref) (int, error) {
	lease := s.cfg.LeaseSec.Duration()
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every stage hands on everything it gets, and the next one drains
	// its input until it is closed: rows are released by whichever stage
	// holds them when the read stops.
	leased := make(chan part, 1)
	// With an ack sink on the file in this process, acks free the window;
	// without one (a replay drain), nothing would, so leases are not
	// windowed.
	windowed := s.q.AckersInProcess() && !s.cfg.DeleteOnEmit
	go func() {
		defer close(leased)
		n := 0
		for n < s.cfg.Limit && hctx.Err() == nil {
			want := min(s.cfg.Limit-n, leasePart)
			if windowed {
				room := int(int64(s.cfg.MaxInFlight) - s.q.InFlight())
				if room <= 0 {
					s.q.WaitSettled(hctx, time.Second)
					continue
				}
				want = min(want, room)
			}
			msgs, err := s.q.LeaseUnloaded(hctx, want, lease)
			if err != nil {
				if hctx.Err() == nil {
					leased <- part{err: err}
				}
				return
			}
			n += len(msgs)
			if len(msgs) > 0 {
				leased <- part{msgs: msgs}
			}
			if len(msgs) < want {
				return // nothing more available now
			}
		}
	}()
	parts := make(chan part, 2)
	go func() {
		defer close(parts)
		for pt := range leased {
			held := pt.msgs
			if pt.err != nil {
				parts <- pt
			}
			for len(held) > 0 {
				if hctx.Err() != nil {
					s.release(held)
					break
				}
				n := min(len(held), loadPart)
				loaded, err := s.q.Load(context.Background(), held[:n:n])
				if err != nil {
					s.release(held)
					parts <- part{err: err}
					break
				}
				parts <- part{msgs: loaded}
				held = held[n:]
			}
		}
	}()
	*acks = (*acks)[:0]
	emitted := 0
	var firstErr error
	stopped := false
	for pt := range parts {
		if pt.err != nil {
			firstErr = pt.err
			cancel()
			continue
		}
		if stopped || firstErr != nil {
			s.release(pt.msgs)
			continue
		}
		// From here a delivery may be tried: dying now costs an attempt.
		s.q.MarkHanded(pt.msgs)
		for i, m := range pt.msgs {
			if err := out.Emit(s.packet(m)); err != nil {
				// Not taken (stop or --max-events): give the rest back
				// untouched, and settle what was taken.
				s.release(pt.msgs[i:])
				stopped = true
				cancel()
				break
			}
			emitted++
			s.emitted.Add(1)
			if s.cfg.DeleteOnEmit {
				*acks = append(*acks, queue.Ref{Seq: m.Seq})
			}
		}
	}
	if err := s.deleteEmitted(*acks); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		if ctx.Err() != nil {
			return emitted, nil
		}
		return emitted, firstErr
	}
	if stopped {
		return -1, nil
	}
	return emitted, nil
}

// release gives leased rows back untouched.
func (s *source) release(msgs []queue.Message) {
	if err := s.q.ReleaseMessages(context.Background(), msgs); err != nil {
		s.env.Logger.Warn("releasing unread rows failed; they return after lease_sec", "path", s.cfg.Path, "err", err)
	}
}

// deleteEmitted applies delete_on_emit to rows the runtime accepted.
func (s *source) deleteEmitted(refs []queue.Ref) error {
	if len(refs) == 0 {
		return nil
	}
	_, err := s.q.Ack(context.Background(), refs...)
	return err
}

// packet rebuilds the stored packet with the durable block and a Nack that
// schedules the row's retry.
func (s *source) packet(m queue.Message) *packet.Packet {
	p := m.Packet
	if p.Meta == nil {
		p.Meta = packet.NewMap(1)
	}
	p.Meta.Set(s.cfg.MetaKey, block(s.path, m.Seq, s.env.NodeID, s.q.ID(), m.Attempt))
	ref := queue.Ref{Seq: m.Seq, QueueID: s.q.ID()}
	var once sync.Once
	p.Nack = func(reason error) {
		// Fan-out copies share this func: one failure is one attempt.
		once.Do(func() {
			st, err := s.q.Nack(context.Background(), ref, reason)
			switch {
			case err != nil:
				s.warn.Warn(s.env.Logger, "nack failed; the row returns after its lease", "path", s.cfg.Path, "seq", m.Seq, "err", err)
			case st == queue.Dead:
				s.nacked.Add(1) // logged and counted by OnDead
			case st == queue.Retrying:
				s.nacked.Add(1)
			}
		})
	}
	return p
}

func (s *source) Close(context.Context) error {
	if s.q == nil {
		return nil
	}
	return s.q.Close()
}

func (s *source) Metrics() []plugin.Metric {
	var depth, dead, elsewhere int64
	if q := s.qm.Load(); q != nil {
		depth = q.Depth()
		dead = q.Counters().DeadLettered
		elsewhere = q.LeasedElsewhere()
	}
	return []plugin.Metric{
		{Name: "emitted_total", Value: s.emitted.Load()},
		{Name: "queue_depth", Value: depth},
		{Name: "nacked_total", Value: s.nacked.Load()},
		{Name: "dead_lettered_total", Value: dead},
		{Name: "leased_elsewhere", Value: elsewhere},
	}
}

var (
	_ plugin.Source  = (*source)(nil)
	_ plugin.Starter = (*source)(nil)
	_ plugin.Closer  = (*source)(nil)
	_ plugin.Metrics = (*source)(nil)
)
