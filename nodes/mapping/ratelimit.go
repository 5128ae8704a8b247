package mapping

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// RateLimitConfig is RateLimit's config.
type RateLimitConfig struct {
	Key         string  `yaml:"key" doc:"Expression whose value chooses the bucket (one per source: source_id); empty: one bucket for every packet." example:"source_id|payload.device"`
	Rate        float64 `yaml:"rate" doc:"Packets per second each bucket lets through, on average."`
	Burst       int     `yaml:"burst" doc:"Packets a bucket lets through at once after a quiet time (its size)."`
	OnLimit     string  `yaml:"on_limit" enum:"drop,delay" doc:"A packet over the rate: drop it (counted in limited_total; the run ends degraded) or delay it until its bucket has a token (backpressure upstream)."`
	MaxKeys     int     `yaml:"max_keys" doc:"Most buckets kept; past it full (idle) buckets are forgotten, then any (bounds memory)."`
	ErrorPolicy `yaml:",inline"`
}

// Validate compiles the key and checks the numbers.
func (c *RateLimitConfig) Validate() error {
	errs := []error{c.ErrorPolicy.validate()}
	if strings.TrimSpace(c.Key) != "" {
		if _, err := compile(c.Key, false); err != nil {
			errs = append(errs, plugin.Errorf("key", "%v", err))
		}
	}
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, plugin.Errorf("rate", "rate must be a number > 0 (packets per second), got %v", c.Rate))
	}
	if c.Burst < 1 {
		errs = append(errs, plugin.Errorf("burst", "burst must be >= 1 (got %d)", c.Burst))
	}
	if c.MaxKeys < 1 {
		errs = append(errs, plugin.Errorf("max_keys", "max_keys must be >= 1 (got %d)", c.MaxKeys))
	}
	return joinErrs(errs)
}

func registerRateLimit(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[RateLimitConfig]{
		Name:      mod + "RateLimit",
		Role:      plugin.RoleNode,
		Summary:   "Limit the packet rate per key with a token bucket: drop or delay what is over it (docs/processing.md).",
		Stability: plugin.Experimental,
		Description: "Each key's bucket holds up to burst tokens and refills at rate per second; a packet takes one. " +
			"With on_limit delay the node waits for the token (the packets behind it wait in its inbox); a graceful stop ends the waits.",
		Metrics: []plugin.MetricSpec{
			{Name: "passed_total", Help: "Packets passed on (at once or after a delay)."},
			{Name: "delayed_total", Help: "Packets held until their bucket had a token (on_limit delay)."},
			{Name: "limited_total", Help: "Packets dropped over the rate (on_limit drop).", Loss: true},
			{Name: "buckets", Help: "Buckets kept now.", Gauge: true},
			{Name: "eval_errors_total", Help: "Packets whose key failed at run time (handled by on_error)."},
		},
		Defaults: RateLimitConfig{Rate: 10, Burst: 10, OnLimit: "drop", MaxKeys: 10000, ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c RateLimitConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			rl := &rateLimit{rate: c.Rate, burst: float64(c.Burst), delay: c.OnLimit == "delay", max: c.MaxKeys,
				buckets: map[string]*bucket{}, now: time.Now, stop: make(chan struct{}), Counters: cs,
				passed: cs.Get("passed_total"), delayed: cs.Get("delayed_total"), limited: cs.Get("limited_total"),
				nbuckets: cs.Get("buckets"), failer: c.failer(env, cs)}
			if strings.TrimSpace(c.Key) != "" {
				p, err := compile(c.Key, false)
				if err != nil {
					return nil, fmt.Errorf("node %q: key: %w", env.NodeID, err)
				}
				rl.key = p
			}
			return rl, nil
		},
	})
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was right
}

type rateLimit struct {
	key     *program // nil: one bucket
	rate    float64
	burst   float64
	delay   bool
	max     int
	run     runner
	buckets map[string]*bucket
	now     func() time.Time
	// wait sleeps for d or until ctx ends or the stop begins; tests replace it.
	wait     func(ctx context.Context, d time.Duration) error
	stop     chan struct{}
	stopOnce sync.Once

	*plugin.Counters
	passed, delayed, limited *plugin.Counter
	nbuckets                 *plugin.Counter // gauge buckets: stored when the buckets change
	failer
}

// Stopping ends the delays: a graceful stop drains the inbox at once
// rather than at the rate.
func (r *rateLimit) Stopping() { r.stopOnce.Do(func() { close(r.stop) }) }

func (r *rateLimit) sleep(ctx context.Context, d time.Duration) error {
	if r.wait != nil {
		return r.wait(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.stop:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// bucketFor returns k's bucket, making room when there are max.
func (r *rateLimit) bucketFor(k string, now time.Time) *bucket {
	if b, ok := r.buckets[k]; ok {
		return b
	}
	if len(r.buckets) >= r.max {
		// A bucket that has refilled is the same as a new one: forget those first.
		for key, b := range r.buckets {
			if b.tokens+now.Sub(b.at).Seconds()*r.rate >= r.burst {
				delete(r.buckets, key)
			}
		}
		for key := range r.buckets {
			if len(r.buckets) < r.max {
				break
			}
			delete(r.buckets, key)
		}
	}
	b := &bucket{tokens: r.burst, at: now}
	r.buckets[k] = b
	r.nbuckets.Store(int64(len(r.buckets)))
	return b
}

func (r *rateLimit) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	k := ""
	if r.key != nil {
		r.run.env.fill(p)
		v, err := r.run.run(r.key)
		if err == nil {
			k, err = keyString(v)
		}
		if err != nil {
			return r.fail(p, fmt.Errorf("key: %w", err), out)
		}
	}
	now := r.now()
	b := r.bucketFor(k, now)
	b.tokens = math.Min(r.burst, b.tokens+now.Sub(b.at).Seconds()*r.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		r.passed.Add(1)
		return out.Emit(p)
	}
	if !r.delay {
		r.limited.Add(1)
		return nil
	}
	// Take the token now (the bucket goes below zero) and wait until it
	// would have been there: packets behind this one queue after it.
	wait := time.Duration((1 - b.tokens) / r.rate * float64(time.Second))
	b.tokens--
	r.delayed.Add(1)
	if err := r.sleep(ctx, wait); err != nil {
		return err
	}
	r.passed.Add(1)
	return out.Emit(p)
}
