package mapping

import (
	"container/list"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// DedupeConfig is Dedupe's config.
type DedupeConfig struct {
	Key         string         `yaml:"key" doc:"Expression whose value identifies a packet; packets with a key seen within ttl are dropped." example:"payload.event_id|source_id + \":\" + string(payload.seq)"`
	TTL         plugin.Seconds `yaml:"ttl" doc:"How long a key is remembered, in seconds."`
	MaxKeys     int            `yaml:"max_keys" doc:"Most keys remembered; past it the oldest is forgotten first (bounds memory)."`
	ErrorPolicy `yaml:",inline"`
}

// Validate compiles the key and checks the bounds.
func (c *DedupeConfig) Validate() error {
	errs := []error{c.ErrorPolicy.validate()}
	if strings.TrimSpace(c.Key) == "" {
		errs = append(errs, plugin.Errorf("key", "key must not be empty"))
	} else if _, err := compile(c.Key, false); err != nil {
		errs = append(errs, plugin.Errorf("key", "%v", err))
	}
	if c.TTL <= 0 {
		errs = append(errs, plugin.Errorf("ttl", "ttl must be > 0 seconds (got %v)", float64(c.TTL)))
	}
	if c.MaxKeys <= 0 {
		errs = append(errs, plugin.Errorf("max_keys", "max_keys must be > 0 (got %d)", c.MaxKeys))
	}
	return joinErrs(errs)
}

func registerDedupe(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[DedupeConfig]{
		Name:      mod + "Dedupe",
		Role:      plugin.RoleNode,
		Summary:   "Drop packets whose key expression was already seen within ttl seconds (docs/processing.md).",
		Stability: plugin.Experimental,
		Metrics: []plugin.MetricSpec{
			{Name: "kept_total", Help: "Packets whose key was new (passed on)."},
			{Name: "duplicates_total", Help: "Packets dropped as duplicates."},
			{Name: "keys", Help: "Keys remembered now.", Gauge: true},
			{Name: "eval_errors_total", Help: "Packets whose key failed at run time (handled by on_error)."},
		},
		Defaults: DedupeConfig{Key: "packet_id", TTL: 300, MaxKeys: 100000, ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c DedupeConfig, env plugin.Env) (plugin.Processor, error) {
			p, err := compile(c.Key, false)
			if err != nil {
				return nil, fmt.Errorf("node %q: key: %w", env.NodeID, err)
			}
			cs := env.Counters()
			return &dedupe{key: p, ttl: c.TTL.Duration(), max: c.MaxKeys, now: time.Now,
				seen: map[string]*list.Element{}, order: list.New(), Counters: cs,
				kept: cs.Get("kept_total"), dups: cs.Get("duplicates_total"), keys: cs.Get("keys"),
				failer: c.failer(env, cs)}, nil
		},
	})
}

type seenKey struct {
	key string
	at  time.Time
}

type dedupe struct {
	key   *program
	ttl   time.Duration
	max   int
	now   func() time.Time
	run   runner
	seen  map[string]*list.Element // of seenKey, in order: oldest first
	order *list.List

	*plugin.Counters
	kept, dups *plugin.Counter
	keys       *plugin.Counter // gauge: stored by Process when the keys change
	failer
}

// keyString renders a key value: a string as it is, anything else as JSON.
func keyString(v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	j, err := toJSON(v)
	if err != nil {
		return "", err
	}
	return "\x00" + j.(string), nil // apart from a string with the same text
}

func (d *dedupe) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	d.run.env.fill(p)
	v, err := d.run.run(d.key)
	var k string
	if err == nil {
		k, err = keyString(v)
	}
	if err != nil {
		return d.fail(p, fmt.Errorf("key: %w", err), out)
	}
	now := d.now()
	// Forget what expired: keys are in first-seen order, so stop at the first live one.
	for e := d.order.Front(); e != nil && now.Sub(e.Value.(seenKey).at) >= d.ttl; e = d.order.Front() {
		d.order.Remove(e)
		delete(d.seen, e.Value.(seenKey).key)
	}
	if _, ok := d.seen[k]; ok {
		d.dups.Add(1)
		d.keys.Store(int64(d.order.Len()))
		return nil
	}
	if d.order.Len() >= d.max {
		e := d.order.Front()
		d.order.Remove(e)
		delete(d.seen, e.Value.(seenKey).key)
	}
	d.seen[k] = d.order.PushBack(seenKey{key: k, at: now})
	d.keys.Store(int64(d.order.Len()))
	d.kept.Add(1)
	return out.Emit(p)
}
