package durable

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// AckConfig is SqliteQueueAckSink's config.
type AckConfig struct {
	Path           string         `yaml:"path" required:"true" doc:"SQLite queue file, relative to the working directory: the file the packets were read from."`
	MetaKey        string         `yaml:"meta_key" doc:"Meta key holding the durable block ({seq, queue_id, ...}) the source attached."`
	Forward        bool           `yaml:"forward" doc:"Emit each packet (unchanged) after its ack is committed."`
	DedupWindowSec plugin.Seconds `yaml:"dedup_window_sec" doc:"How long an acked row's idempotency key stays known, so a replayed packet is not stored again; negative disables (upstream forgets the key at ack)."`
}

// Validate implements the plugin config check.
func (c *AckConfig) Validate() error {
	var errs []error // all of them, so one validation shows every problem
	if err := checkPath(c.Path); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, retention("dedup_window_sec", c.DedupWindowSec))
	return errors.Join(errs...)
}

func registerAck(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[AckConfig]{
		Name: mod + "SqliteQueueAckSink",
		Role: plugin.RoleSink,
		// upstream REQUIRES_PORTABLE_PAYLOAD: frames cannot be written or stored
		InProfile: plugin.ProfileJSON, OutProfile: plugin.ProfileJSON,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "Delete (ack) the queue rows of packets that reached it; one commit per batch.",
		Description: `
Reads meta[meta_key].seq and deletes that row of its own file; the row's key stays known for
dedup_window_sec. A block with another queue_id (or, for blocks without one, another path) is
refused: upstream would delete an unrelated row with the same seq. A packet without a valid
block is counted in ack_invalid_total, logged and dropped (upstream aborts the run); an
already-deleted row is counted in ack_missing_total.`,
		Defaults: AckConfig{MetaKey: "durable", DedupWindowSec: 86400},
		Metrics: []plugin.MetricSpec{
			{Name: "acked_total", Help: "Rows deleted (acked) for packets that reached this sink."},
			{Name: "queue_depth", Help: "Rows in the queue file now.", Gauge: true},
			{Name: "ack_invalid_total", Help: "Packets without a valid durable block (or naming an invalid row): dropped, not acked.", Loss: true},
			{Name: "ack_missing_total", Help: "Packets whose row was already gone (acked before, e.g. a replay): nothing to delete."},
			{Name: "ack_foreign_total", Help: "Packets whose block names another queue: refused, not acked.", Loss: true},
		},
		NewBatchProcessor: func(c AckConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			return &ackSink{cfg: c, env: env, warn: plugin.RateLog{Burst: 5}, inflight: pipeline[ackFlight]{max: maxInflightAcks}}, nil
		},
	})
}

type ackSink struct {
	cfg AckConfig
	env plugin.Env
	q   *queue.Queue
	// qm is q for Metrics, which runs on another goroutine, also while
	// Start is still opening the file (serve's snapshots).
	qm   atomic.Pointer[queue.Queue]
	warn plugin.RateLog // per-packet problems: burst of 5, then one line per 10 s

	acked, missing, invalid, foreign atomic.Int64

	refs []queue.Ref
	pkts []*packet.Packet

	// With forward: false acks are pipelined: the next batch is taken
	// while earlier acks commit, and the writer commits them together.
	// An ack not yet committed at a crash only means a redelivery.
	inflight pipeline[ackFlight]
}

type ackFlight struct {
	p    *queue.AckPending
	pkts []*packet.Packet
	refs []queue.Ref
}

func (f ackFlight) Done() <-chan struct{} { return f.p.Done() }
func (f ackFlight) Rows() int             { return len(f.refs) }

const maxInflightAcks = 32768

func (a *ackSink) Start(context.Context) error {
	dedup := a.cfg.DedupWindowSec.Duration()
	if a.cfg.DedupWindowSec < 0 {
		dedup = -1
	}
	q, err := queue.Open(a.cfg.Path, queue.Options{DedupWindow: dedup, Acks: true, Logger: a.env.Logger})
	if err != nil {
		return err
	}
	a.q = q
	a.qm.Store(q)
	return nil
}

var errNoBlock = errors.New("no durable block")

// ref reads the durable block of p.
func (a *ackSink) ref(p *packet.Packet) (queue.Ref, error) {
	raw, ok := p.Meta.Get(a.cfg.MetaKey)
	if !ok {
		return queue.Ref{}, fmt.Errorf("%w: meta[%q] is missing", errNoBlock, a.cfg.MetaKey)
	}
	m, ok := raw.(*packet.Map)
	if !ok {
		return queue.Ref{}, fmt.Errorf("%w: meta[%q] is not a mapping", errNoBlock, a.cfg.MetaKey)
	}
	seqRaw, _ := m.Get("seq")
	seq, ok := seqRaw.(int64)
	if !ok {
		return queue.Ref{}, fmt.Errorf("%w: meta[%q].seq is %s, not an integer", errNoBlock, a.cfg.MetaKey, packet.PyStr(seqRaw))
	}
	qid, _ := m.GetString("queue_id")
	if qid == "" {
		// Written by the Python project: compare the file instead.
		if path, ok := m.GetString("path"); ok && !sameFile(path, a.cfg.Path) {
			qid = "path:" + path // cannot match our id: refused as foreign
		}
	}
	return queue.Ref{Seq: seq, QueueID: qid}, nil
}

// ProcessBatch acks the whole batch in one transaction.
func (a *ackSink) ProcessBatch(ctx context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	a.refs, a.pkts = a.refs[:0], a.pkts[:0]
	for _, p := range batch {
		r, err := a.ref(p)
		if err != nil {
			a.invalid.Add(1)
			a.warn.Warn(a.env.Logger, "packet dropped: cannot ack it", "path", a.cfg.Path, "packet_id", p.ID, "err", err)
			continue
		}
		a.refs = append(a.refs, r)
		a.pkts = append(a.pkts, p)
	}
	if len(a.refs) == 0 {
		return a.settle(false)
	}
	if !a.cfg.Forward {
		refs := append([]queue.Ref(nil), a.refs...)
		pkts := append([]*packet.Packet(nil), a.pkts...)
		pend, err := a.q.AckAsync(refs)
		if err != nil {
			return err
		}
		a.inflight.add(ackFlight{p: pend, pkts: pkts, refs: refs})
		return a.settle(false)
	}
	st, err := a.q.Ack(context.Background(), a.refs...) // an ack is never abandoned halfway through shutdown
	if err != nil {
		return err
	}
	a.count(st, a.refs, a.pkts)
	for i, p := range a.pkts {
		if st[i] == queue.Invalid || st[i] == queue.Foreign {
			continue
		}
		if err := out.Emit(p); err != nil {
			return err
		}
	}
	return nil
}

// settle collects finished pipelined acks (all of them when all is set).
func (a *ackSink) settle(all bool) error {
	for {
		f, ok := a.inflight.next(all)
		if !ok {
			return nil
		}
		st, err := f.p.Wait()
		if err != nil {
			return err
		}
		a.count(st, f.refs, f.pkts)
	}
}

func (a *ackSink) count(st []queue.AckStatus, refs []queue.Ref, pkts []*packet.Packet) {
	for i, s := range st {
		switch s {
		case queue.Acked:
			a.acked.Add(1)
		case queue.Missing:
			a.missing.Add(1)
		case queue.Invalid:
			a.invalid.Add(1)
		case queue.Foreign:
			a.foreign.Add(1)
			a.warn.Warn(a.env.Logger, "packet dropped: its durable block names another queue file",
				"path", a.cfg.Path, "packet_id", pkts[i].ID, "seq", refs[i].Seq)
		}
	}
}

// Close waits for pipelined acks, then closes the queue.
func (a *ackSink) Close(context.Context) error {
	if a.q == nil {
		return nil
	}
	err := a.settle(true)
	if cerr := a.q.Close(); err == nil {
		err = cerr
	}
	return err
}

func (a *ackSink) Metrics() []plugin.Metric {
	var depth int64
	if q := a.qm.Load(); q != nil {
		depth = q.Depth()
	}
	return []plugin.Metric{
		{Name: "acked_total", Value: a.acked.Load()},
		{Name: "queue_depth", Value: depth},
		{Name: "ack_invalid_total", Value: a.invalid.Load()},
		{Name: "ack_missing_total", Value: a.missing.Load()},
		{Name: "ack_foreign_total", Value: a.foreign.Load()},
	}
}

var (
	_ plugin.BatchProcessor = (*ackSink)(nil)
	_ plugin.Starter        = (*ackSink)(nil)
	_ plugin.Closer         = (*ackSink)(nil)
	_ plugin.Metrics        = (*ackSink)(nil)
)
