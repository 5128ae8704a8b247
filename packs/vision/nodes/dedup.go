package nodes

import (
	"context"
	"sync"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/dedup"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// DedupConfig is DedupPolicyNode's config.
type DedupConfig struct {
	CooldownSec   plugin.Seconds `yaml:"cooldown_sec" doc:"Seconds during which a repeat of the same camera_id:event_type:track_id is dropped."`
	PruneInterval int64          `yaml:"prune_interval" doc:"Every this many keyed events, forget keys whose cooldown has passed."`
}

// Validate rejects a negative or non-finite cooldown.
func (c *DedupConfig) Validate() error {
	if !(c.CooldownSec >= 0) || c.CooldownSec > 1e9 {
		return plugin.Errorf("cooldown_sec", "must be a number of seconds between 0 and 1e9")
	}
	return nil
}

func registerDedupPolicy(r *plugin.Registry) {
	name, aliases := names("policy", "DedupPolicyNode")
	plugin.Register(r, plugin.Spec[DedupConfig]{
		Name: name, Aliases: aliases,
		Role: plugin.RoleNode, In: []string{"event"}, Out: []string{"event"},
		Summary: "Drop repeated events within a cooldown per camera_id:event_type:track_id; a severity change passes.",
		Description: "Key `{camera_id}:{event_type}:{track_id|na}`; events without camera_id or event_type always pass. " +
			"A new key passes; a repeat within cooldown_sec (monotonic clock) is dropped without refreshing the " +
			"window; a different severity than the key's last accepted one passes at once. State is per process. " +
			"Accepted packets pass unchanged.",
		Defaults: DedupConfig{CooldownSec: 10, PruneInterval: 100},
		Metrics: []plugin.MetricSpec{
			{Name: "accepted_total", Help: "Packets passed: first of their key within cooldown_sec."},
			{Name: "dropped_total", Help: "Packets dropped as repeats of their key within cooldown_sec (on purpose)."},
		},
		NewProcessor: func(c DedupConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			return &dedupPolicy{Counters: cs, store: dedup.New(c.CooldownSec.Duration(), int(c.PruneInterval)),
				accepted: cs.Get("accepted_total"), dropped: cs.Get("dropped_total")}, nil
		},
	})
}

type dedupPolicy struct {
	*plugin.Counters
	mu                sync.Mutex // Process is called from one goroutine; the lock keeps tests honest
	store             *dedup.Store
	accepted, dropped *plugin.Counter
}

func (d *dedupPolicy) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	payload, err := eventPayload(p)
	if err != nil {
		return err
	}
	d.mu.Lock()
	ok := d.store.Allow(payload)
	d.mu.Unlock()
	if !ok {
		d.dropped.Add(1)
		return nil
	}
	d.accepted.Add(1)
	return out.Emit(p)
}
