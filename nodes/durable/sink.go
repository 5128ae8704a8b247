package durable

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SinkConfig is SqliteQueueSink's config.
type SinkConfig struct {
	Path        string `yaml:"path" required:"true" doc:"SQLite queue file, relative to the working directory; parent directories are created."`
	Forward     bool   `yaml:"forward" doc:"Emit each packet after its row is committed, with the durable meta block (seq of the new or existing row)."`
	MetaKey     string `yaml:"meta_key" doc:"Meta key of the durable block on forwarded packets."`
	Synchronous string `yaml:"synchronous" doc:"SQLite synchronous level: FULL (a row is on disk when the sink moves on) or NORMAL (faster; a power cut may lose the last commits, never corrupt the file)."`
	MaxRows     int64  `yaml:"max_rows" doc:"Bound on queued rows; 0 is unbounded."`
	MaxBytes    int64  `yaml:"max_bytes" doc:"Bound on the queued rows' stored bytes; 0 is unbounded."`
	Overflow    string `yaml:"overflow" enum:"block,drop_oldest" doc:"At a bound: block (wait for the reader to make room; backpressure reaches the sources) or drop_oldest (delete the oldest rows; counted in dropped_total)."`
}

// Validate implements the plugin config check.
func (c *SinkConfig) Validate() error {
	var errs []error // all of them, so one validation shows every problem
	if err := checkPath(c.Path); err != nil {
		errs = append(errs, err)
	}
	if c.MaxRows < 0 || c.MaxBytes < 0 {
		errs = append(errs, plugin.Errorf("max_rows", "max_rows and max_bytes must be >= 0"))
	}
	errs = append(errs, checkSync(&c.Synchronous))
	return errors.Join(errs...)
}

func registerSink(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[SinkConfig]{
		Name: mod + "SqliteQueueSink",
		Role: plugin.RoleSink, Commits: true,
		// upstream REQUIRES_PORTABLE_PAYLOAD: frames cannot be written or stored
		InProfile: plugin.ProfileJSON, OutProfile: plugin.ProfileJSON,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "Store packets durably in a SQLite queue file (group commit; idempotent by key).",
		Description: `
Each batch the runtime hands over is written in one transaction; the sink moves on only after
the commit (synchronous FULL: on disk). The idempotency key is meta.idempotency_key, else the
packet id: a key already queued, or acked within the reader's dedup window, is not stored twice
(counted in dedup_total; enqueued_total counts both, as upstream). Payload and meta must be
JSON (upstream P7.1): other packets are dropped, nacked and counted in rejected_total.
The file's packets table is upstream's, so the Python project can drain it.`,
		Defaults: SinkConfig{MetaKey: "durable", Synchronous: "FULL", Overflow: queue.OverflowBlock},
		Metrics: []plugin.MetricSpec{
			{Name: "enqueued_total", Help: "Packets committed to the queue, duplicates included (as upstream)."},
			{Name: "queue_depth", Help: "Rows in the queue file now.", Gauge: true},
			{Name: "dedup_total", Help: "Packets whose idempotency key was already known: not stored again."},
			{Name: "dedup_conflict_total", Help: "Duplicates whose payload differed from the stored row: the new payload was discarded.", Loss: true},
			{Name: "dropped_total", Help: "Queued rows deleted by overflow drop_oldest to make room.", Loss: true},
			{Name: "rejected_total", Help: "Packets that could not be stored (payload or meta not JSON): dropped and nacked.", Loss: true},
			{Name: "not_stored_total", Help: "Packets whose commit failed or that a stop left unstored: nacked to their origin.", Loss: true},
		},
		NewBatchProcessor: func(c SinkConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			return &sink{cfg: c, env: env, path: pyPath(c.Path), warn: plugin.RateLog{Burst: 5}, inflight: pipeline[enqueueFlight]{max: maxInflightRows}}, nil
		},
	})
}

type sink struct {
	cfg  SinkConfig
	env  plugin.Env
	path string // meta block form
	q    *queue.Queue
	warn plugin.RateLog // per-packet problems: burst of 5, then one line per 10 s
	// qm is q for Metrics, which runs on another goroutine, also while
	// Start is still opening the file (serve's snapshots).
	qm atomic.Pointer[queue.Queue]

	enqueued, dedup, conflicts, rejected, notStored atomic.Int64
	recs                                            []queue.Record
	keep                                            []*packet.Packet

	// Pipelined commits (forward: false, unbounded queue): batches are
	// handed to the writer and the sink takes the next batch while they
	// commit, so the writer commits several batches in one transaction.
	// Close waits for all of them; a failed commit fails the next call.
	pipelined bool
	ackers    sync.WaitGroup // ackWhenCommitted goroutines; Close waits for them
	inflight  pipeline[enqueueFlight]
}

type enqueueFlight struct {
	p    *queue.Pending
	recs []queue.Record
	pkts []*packet.Packet
	// acked: a goroutine acks pkts as soon as the commit is done
	// (ackWhenCommitted), so settle must not ack them again.
	acked bool
}

// ackWhenCommitted acks a pipelined batch's packets the moment its commit
// finishes, not when the sink next collects it: an origin holding a
// request open (HTTP 202) or a broker message unacked must not wait for
// the next batch to arrive. It reports whether it took the acks over.
func (s *sink) ackWhenCommitted(pend *queue.Pending, pkts []*packet.Packet) bool {
	any := false
	for _, p := range pkts {
		if p.Ack != nil {
			any = true
			break
		}
	}
	if !any {
		return false
	}
	s.ackers.Add(1)
	go func() {
		defer s.ackers.Done()
		if _, err := pend.Wait(); err != nil {
			return // settle nacks them
		}
		for _, p := range pkts {
			if p.Ack != nil {
				p.Ack()
			}
		}
	}()
	return true
}

func (f enqueueFlight) Done() <-chan struct{} { return f.p.Done() }
func (f enqueueFlight) Rows() int             { return len(f.recs) }

// maxInflightRows bounds the rows handed to the writer but not yet
// committed (memory, and what a crash can take with it).
const maxInflightRows = 32768

func (s *sink) Start(context.Context) error {
	q, err := queue.Open(s.cfg.Path, queue.Options{
		Synchronous: s.cfg.Synchronous, MaxRows: s.cfg.MaxRows, MaxBytes: s.cfg.MaxBytes, Overflow: s.cfg.Overflow, Logger: s.env.Logger,
	})
	if err != nil {
		return err
	}
	s.q = q
	s.qm.Store(q)
	s.pipelined = !s.cfg.Forward && s.cfg.MaxRows == 0 && s.cfg.MaxBytes == 0
	return nil
}

// ProcessBatch commits the whole batch in one transaction (shared with
// whatever else waits on the file).
func (s *sink) ProcessBatch(ctx context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	s.recs, s.keep = s.recs[:0], s.keep[:0]
	for _, p := range batch {
		r, err := queue.RecordOf(p, "")
		if err != nil {
			// One bad packet must not sink the batch: drop it, tell its
			// origin, count the loss.
			s.rejected.Add(1)
			s.warn.Warn(s.env.Logger, "packet not stored", "path", s.cfg.Path, "packet_id", p.ID, "err", err)
			if p.Nack != nil {
				p.Nack(err)
			}
			continue
		}
		s.recs = append(s.recs, r)
		s.keep = append(s.keep, p)
	}
	if len(s.recs) == 0 {
		return s.settle(false)
	}
	if s.pipelined {
		recs := append([]queue.Record(nil), s.recs...)
		pkts := append([]*packet.Packet(nil), s.keep...)
		pend, err := s.q.EnqueueAsync(recs)
		if err != nil {
			return err
		}
		s.enqueued.Add(int64(len(recs)))
		acked := s.ackWhenCommitted(pend, pkts)
		s.inflight.add(enqueueFlight{p: pend, recs: recs, pkts: pkts, acked: acked})
		return s.settle(false)
	}
	res, err := s.q.EnqueueBatch(ctx, s.recs)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopped while waiting for room (the runtime cancels the node
			// context at --stop-timeout): rows committed before the wait
			// stay; the packets not stored are nacked so a durable origin
			// offers them again, and the rest of the run goes on.
			stored := 0
			for i, p := range s.keep {
				if i < len(res) && res[i].Seq > 0 {
					stored++
					if p.Ack != nil {
						p.Ack()
					}
					continue
				}
				if p.Nack != nil {
					p.Nack(pathErr(s.cfg.Path, err))
				}
			}
			s.enqueued.Add(int64(stored))
			s.notStored.Add(int64(len(s.keep) - stored))
			s.env.Logger.Warn("stopped while the queue was full: packets not stored were nacked",
				"path", s.cfg.Path, "stored", stored, "not_stored", len(s.keep)-stored)
			return nil
		}
		return err
	}
	s.enqueued.Add(int64(len(res)))
	s.count(res, s.recs, s.keep, true)
	if !s.cfg.Forward {
		return nil
	}
	for i, p := range s.keep {
		if err := out.Emit(withBlock(p, s.cfg.MetaKey, block(s.path, res[i].Seq, s.env.NodeID, s.q.ID(), 0))); err != nil {
			return err
		}
	}
	return nil
}

// count updates the dedup counters for committed results and, with ack,
// acks their packets.
func (s *sink) count(res []queue.Result, recs []queue.Record, pkts []*packet.Packet, ack bool) {
	for i, r := range res {
		// Committed (stored now, or already stored under its key): the
		// origin may acknowledge it (packet.Ack).
		if ack && pkts[i].Ack != nil {
			pkts[i].Ack()
		}
		if r.Duplicate {
			s.dedup.Add(1)
			if r.Conflict {
				s.conflicts.Add(1)
				s.warn.Warn(s.env.Logger, "duplicate idempotency key with a different payload: kept the queued row, discarded this one",
					"path", s.cfg.Path, "key", recs[i].Key, "seq", r.Seq, "packet_id", pkts[i].ID)
			}
		}
	}
}

// settle collects finished pipelined commits: all of them when all is
// set, else those already done plus the oldest while too many rows are in
// flight.
func (s *sink) settle(all bool) error {
	var firstErr error
	failed := 0
	for {
		f, ok := s.inflight.next(all || firstErr != nil)
		if !ok {
			break
		}
		res, err := f.p.Wait()
		if err != nil {
			// Rows of this batch are not stored: tell their origins. A
			// failed commit usually fails the ones behind it (disk full):
			// collect them all, so the error counts every lost packet.
			for _, p := range f.pkts {
				if p.Nack != nil {
					p.Nack(err)
				}
			}
			failed += len(f.pkts)
			s.enqueued.Add(-int64(len(f.pkts)))
			s.notStored.Add(int64(len(f.pkts)))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		s.count(res, f.recs, f.pkts, !f.acked)
	}
	if firstErr != nil {
		return fmt.Errorf("%d packets were not stored: %w", failed, firstErr)
	}
	return nil
}

// Close waits for every pipelined commit, then closes the queue.
func (s *sink) Close(context.Context) error {
	if s.q == nil {
		return nil
	}
	err := s.settle(true)
	s.ackers.Wait()
	if cerr := s.q.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *sink) Metrics() []plugin.Metric {
	var depth, dropped int64
	if q := s.qm.Load(); q != nil {
		depth = q.Depth()
		dropped = q.Counters().Dropped
	}
	return []plugin.Metric{
		{Name: "enqueued_total", Value: s.enqueued.Load()},
		{Name: "queue_depth", Value: depth},
		{Name: "dedup_total", Value: s.dedup.Load()},
		{Name: "dedup_conflict_total", Value: s.conflicts.Load()},
		{Name: "dropped_total", Value: dropped},
		{Name: "rejected_total", Value: s.rejected.Load()},
		{Name: "not_stored_total", Value: s.notStored.Load()},
	}
}

var (
	_ plugin.BatchProcessor = (*sink)(nil)
	_ plugin.Starter        = (*sink)(nil)
	_ plugin.Closer         = (*sink)(nil)
	_ plugin.Metrics        = (*sink)(nil)
)
