package mapping

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// BatchConfig is Batch's config.
type BatchConfig struct {
	Count       int            `yaml:"count" doc:"Packets in a full batch: the batch is emitted when it has this many."`
	MaxBytes    int            `yaml:"max_bytes" doc:"Most bytes of the packets' portable JSON (as a JSON sink writes them) in a batch: a packet that would take the batch past it closes the batch first (a packet bigger than max_bytes is a batch of one). 0: no byte bound."`
	PeriodSec   plugin.Seconds `yaml:"period_sec" doc:"Emit a partial batch this long after its first packet arrived. 0: only full batches (and what is left at the end of input)."`
	Key         string         `yaml:"key" doc:"Expression whose value chooses the batch: one open batch per key. Empty: one batch." example:"source_id|payload.device"`
	MaxKeys     int            `yaml:"max_keys" doc:"Most open batches (keys); past it the oldest batch is emitted early (counted in evictions_total)."`
	OutKind     string         `yaml:"kind" doc:"Kind of the batch packets."`
	IncludeMeta bool           `yaml:"include_meta" doc:"Put the whole packets in the batch ({\"packets\": [{packet_id, ts, kind, source_id, payload, meta}...], \"count\": n}) instead of their payloads ({\"items\": [...], \"count\": n})."`
	ErrorPolicy `yaml:",inline"`
}

// Validate compiles the key and checks the bounds.
func (c *BatchConfig) Validate() error {
	errs := []error{c.ErrorPolicy.validate()}
	if c.Count < 1 {
		errs = append(errs, plugin.Errorf("count", "count must be >= 1 (got %d)", c.Count))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, plugin.Errorf("max_bytes", "max_bytes must be >= 0 (got %d; 0 turns it off)", c.MaxBytes))
	}
	if c.PeriodSec < 0 {
		errs = append(errs, plugin.Errorf("period_sec", "period_sec must be >= 0 seconds (got %v; 0 turns it off)", float64(c.PeriodSec)))
	}
	if strings.TrimSpace(c.Key) != "" {
		if _, err := compile(c.Key, false); err != nil {
			errs = append(errs, plugin.Errorf("key", "%v", err))
		}
	}
	if c.MaxKeys < 1 {
		errs = append(errs, plugin.Errorf("max_keys", "max_keys must be >= 1 (got %d)", c.MaxKeys))
	}
	if strings.TrimSpace(c.OutKind) == "" {
		errs = append(errs, plugin.Errorf("kind", "kind must not be empty"))
	}
	return joinErrs(errs)
}

func registerBatch(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[BatchConfig]{
		Name:      mod + "Batch",
		Role:      plugin.RoleNode,
		Summary:   "Gather packets into one batch packet by count, bytes, period and key (docs/processing.md).",
		Stability: plugin.Experimental,
		Description: "A batch packet has its first packet's ts and source_id (the key, when there is one), no meta, and payload " +
			"{\"items\": [payloads...], \"count\": n}. Its Ack acknowledges every packet in it, its Nack nacks them. " +
			"What is open at the end of input is emitted.",
		Metrics: []plugin.MetricSpec{
			{Name: "batches_total", Help: "Batch packets emitted."},
			{Name: "batched_total", Help: "Packets put into batches."},
			{Name: "evictions_total", Help: "Batches emitted early because max_keys batches were open."},
			{Name: "open_batches", Help: "Batches open now.", Gauge: true},
			{Name: "eval_errors_total", Help: "Packets whose key failed at run time (handled by on_error)."},
		},
		Defaults: BatchConfig{Count: 100, MaxKeys: 1000, OutKind: "batch", ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c BatchConfig, env plugin.Env) (plugin.Processor, error) {
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("node %q: %w", env.NodeID, err)
			}
			cs := env.Counters()
			b := &batcher{cfg: c, period: c.PeriodSec.Duration(), open: map[string]*list.Element{}, order: list.New(),
				enc: packet.NewJSONEncoder(packet.JSONOptions{}), Counters: cs,
				batches: cs.Get("batches_total"), batched: cs.Get("batched_total"), evictions: cs.Get("evictions_total"),
				nopen: cs.Get("open_batches"), failer: c.failer(env, cs)}
			if strings.TrimSpace(c.Key) != "" {
				b.key, _ = compile(c.Key, false)
			}
			return b, nil
		},
	})
}

// openBatch is one batch being filled.
type openBatch struct {
	key   string
	ps    []*packet.Packet
	bytes int
	timer *time.Timer // period_sec; nil without
	done  bool        // taken: a timer that fires late finds it done
}

type batcher struct {
	cfg    BatchConfig
	period time.Duration
	key    *program // nil: one batch
	run    runner
	enc    packet.JSONEncoder
	buf    []byte

	background
	open  map[string]*list.Element // of *openBatch, oldest first
	order *list.List

	*plugin.Counters
	batches, batched, evictions *plugin.Counter
	nopen                       *plugin.Counter // gauge open_batches: stored under mu when the batches change
	failer
}

func (b *batcher) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	k := ""
	if b.key != nil {
		b.run.env.fill(p)
		v, err := b.run.run(b.key)
		if err == nil {
			k, err = keyString(v)
		}
		if err != nil {
			return b.fail(p, fmt.Errorf("key: %w", err), out)
		}
	}
	size := 0
	if b.cfg.MaxBytes > 0 {
		// Lenient: a value JSON cannot hold is written as its string, as a sink's default=str does.
		b.buf, _ = b.enc.AppendPacket(b.buf[:0], p)
		size = len(b.buf)
	}
	var ready []portPacket
	b.mu.Lock()
	b.remember(out)
	e, ok := b.open[k]
	var ob *openBatch
	if ok {
		ob = e.Value.(*openBatch)
		if b.cfg.MaxBytes > 0 && ob.bytes+size > b.cfg.MaxBytes {
			ready = append(ready, b.take(e))
			ok = false
		}
	}
	if !ok {
		if b.order.Len() >= b.cfg.MaxKeys {
			ready = append(ready, b.take(b.order.Front()))
			b.evictions.Add(1)
		}
		ob = &openBatch{key: k}
		e = b.order.PushBack(ob)
		b.open[k] = e
		if b.period > 0 {
			ob.timer = time.AfterFunc(b.period, func() { b.expire(ob) })
		}
	}
	ob.ps = append(ob.ps, p)
	ob.bytes += size
	b.batched.Add(1)
	if len(ob.ps) >= b.cfg.Count || b.cfg.MaxBytes > 0 && ob.bytes >= b.cfg.MaxBytes {
		ready = append(ready, b.take(e))
	}
	b.nopen.Store(int64(b.order.Len()))
	b.mu.Unlock()
	return emitAll(out, ready)
}

// take removes a batch and builds its packet; called with mu held.
func (b *batcher) take(e *list.Element) portPacket {
	ob := b.order.Remove(e).(*openBatch)
	delete(b.open, ob.key)
	ob.done = true
	if ob.timer != nil {
		ob.timer.Stop()
	}
	b.batches.Add(1)
	return portPacket{p: b.build(ob)}
}

func (b *batcher) build(ob *openBatch) *packet.Packet {
	first := ob.ps[0]
	list := make([]any, len(ob.ps))
	var a acks
	for i, p := range ob.ps {
		if b.cfg.IncludeMeta {
			list[i] = packetValue(p)
		} else {
			list[i] = p.Payload
		}
		a.add(p)
	}
	field := "items"
	if b.cfg.IncludeMeta {
		field = "packets"
	}
	src := first.SourceID
	if b.key != nil {
		src = keyDisplay(ob.key)
	}
	q := &packet.Packet{ID: packet.NewID(), TS: first.TS, Kind: b.cfg.OutKind, SourceID: src,
		Payload: packet.MapOf(field, list, "count", int64(len(ob.ps)))}
	a.set(q)
	return q
}

// packetValue is p as a JSON-like object, the envelope a JSON sink writes.
func packetValue(p *packet.Packet) *packet.Map {
	meta := p.PortableMeta()
	if meta == nil {
		meta = packet.NewMap(0)
	}
	return packet.MapOf("packet_id", p.ID, "ts", p.TS, "kind", p.Kind, "source_id", p.SourceID, "payload", p.Payload, "meta", meta)
}

// expire emits ob from its timer's goroutine, unless it was taken since.
func (b *batcher) expire(ob *openBatch) {
	b.mu.Lock()
	if ob.done {
		b.mu.Unlock()
		return
	}
	out := b.begin()
	if out == nil {
		b.mu.Unlock()
		return
	}
	ready := []portPacket{b.take(b.open[ob.key])}
	b.nopen.Store(int64(b.order.Len()))
	b.mu.Unlock()
	defer b.wg.Done()
	_ = emitAll(out, ready) // an emit that fails ends the run; its packets are nacked
}

// Flush emits every open batch (the end of input) and waits for the
// batches a timer is emitting.
func (b *batcher) Flush(_ context.Context, out plugin.Emitter) error {
	b.mu.Lock()
	var ready []portPacket
	for b.order.Len() > 0 {
		ready = append(ready, b.take(b.order.Front()))
	}
	b.nopen.Store(0)
	b.mu.Unlock()
	err := emitAll(out, ready)
	b.wg.Wait()
	return err
}

// Close stops the timers; batches still open (the run was cancelled
// before the end of input) are nacked so that their origin retries them.
func (b *batcher) Close(context.Context) error {
	b.mu.Lock()
	b.closed = true
	var a acks
	for b.order.Len() > 0 {
		ob := b.order.Remove(b.order.Front()).(*openBatch)
		ob.done = true
		if ob.timer != nil {
			ob.timer.Stop()
		}
		for _, p := range ob.ps {
			a.add(p)
		}
	}
	clear(b.open)
	b.nopen.Store(0)
	b.mu.Unlock()
	b.wg.Wait()
	a.nackAll(errors.New("batch not emitted: the node was closed before the end of its input"))
	return nil
}
