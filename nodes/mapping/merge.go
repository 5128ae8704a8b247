package mapping

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// MergeConfig is Merge's config.
type MergeConfig struct {
	Ports       []string       `yaml:"ports" doc:"Input ports (in-edges' to_port) to join: with key, a packet is emitted once every port delivered one with the same key. Empty: Merge is a union and passes every packet on."`
	Key         string         `yaml:"key" doc:"Expression whose value joins packets of different ports (needs ports)." example:"payload.order_id"`
	TimeoutSec  plugin.Seconds `yaml:"timeout_sec" doc:"Seconds an incomplete join waits for its other ports, from its first packet (checked as packets arrive and at the end of input)."`
	OnTimeout   string         `yaml:"on_timeout" enum:"drop,emit" doc:"An incomplete join that timed out, was evicted or is left at the end of input: drop it (counted in expired_total) or emit it with null for the missing ports (counted too)."`
	MaxKeys     int            `yaml:"max_keys" doc:"Most incomplete joins held; past it the oldest is expired (bounds memory)."`
	OutKind     string         `yaml:"kind" doc:"Kind of the joined packets."`
	ErrorPolicy `yaml:",inline"`
}

// Validate compiles the key and checks the ports.
func (c *MergeConfig) Validate() error {
	errs := []error{c.ErrorPolicy.validate()}
	for i, p := range c.Ports {
		if !validPort(p) {
			errs = append(errs, plugin.Errorf(fmt.Sprintf("ports[%d]", i), "port %q must be a name (letters, digits, _; not starting with a digit)", p))
		} else if slices.Index(c.Ports, p) != i {
			errs = append(errs, plugin.Errorf(fmt.Sprintf("ports[%d]", i), "port %q is listed twice", p))
		}
	}
	keyed := strings.TrimSpace(c.Key) != ""
	switch {
	case keyed && len(c.Ports) < 2:
		errs = append(errs, plugin.Errorf("ports", "a join by key needs at least two ports (got %d)", len(c.Ports)))
	case !keyed && len(c.Ports) > 0:
		errs = append(errs, plugin.Errorf("key", "ports are joined by key: give key (or no ports, for a union)"))
	case keyed:
		if _, err := compile(c.Key, false); err != nil {
			errs = append(errs, plugin.Errorf("key", "%v", err))
		}
	}
	if !(c.TimeoutSec > 0) {
		errs = append(errs, plugin.Errorf("timeout_sec", "timeout_sec must be > 0 seconds (got %v)", float64(c.TimeoutSec)))
	}
	if c.MaxKeys < 1 {
		errs = append(errs, plugin.Errorf("max_keys", "max_keys must be >= 1 (got %d)", c.MaxKeys))
	}
	if strings.TrimSpace(c.OutKind) == "" {
		errs = append(errs, plugin.Errorf("kind", "kind must not be empty"))
	}
	return joinErrs(errs)
}

func registerMerge(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[MergeConfig]{
		Name:      mod + "Merge",
		Role:      plugin.RoleNode,
		PortAware: true,
		Summary:   "Join the packets of several input ports that share a key into one packet {port: payload...}; without key, a union (docs/processing.md).",
		Stability: plugin.Experimental,
		Description: "A joined packet has payload {<port>: payload, ...} in ports order, the earliest ts of its parts, source_id the key, " +
			"and an Ack that acknowledges all its parts. A second packet on a port before the join completes replaces the first (counted in replaced_total).",
		Metrics: []plugin.MetricSpec{
			{Name: "joined_total", Help: "Joined packets emitted with every port present (a union: packets passed on)."},
			{Name: "expired_total", Help: "Incomplete joins that timed out, were evicted past max_keys or were left at the end of input (dropped or emitted partial, as on_timeout says)."},
			{Name: "replaced_total", Help: "Packets replaced by a later packet of the same port and key before the join completed."},
			{Name: "pending", Help: "Incomplete joins held now.", Gauge: true},
			{Name: "eval_errors_total", Help: "Packets whose key failed at run time or that came on a port not in ports (handled by on_error)."},
		},
		Defaults: MergeConfig{TimeoutSec: 60, OnTimeout: "drop", MaxKeys: 10000, OutKind: "merged", ErrorPolicy: ErrorPolicy{OnError: onErrorDrop}},
		NewProcessor: func(c MergeConfig, env plugin.Env) (plugin.Processor, error) {
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("node %q: %w", env.NodeID, err)
			}
			cs := env.Counters()
			m := &merger{cfg: c, timeout: c.TimeoutSec.Duration(), now: time.Now, pending: map[string]*list.Element{}, order: list.New(),
				Counters: cs, joined: cs.Get("joined_total"), expired: cs.Get("expired_total"), replaced: cs.Get("replaced_total"),
				npending: cs.Get("pending"), failer: c.failer(env, cs)}
			if len(c.Ports) > 0 {
				m.key, _ = compile(c.Key, false)
			}
			return m, nil
		},
	})
}

// join is one key's packets so far, by port index.
type join struct {
	key   string
	parts []*packet.Packet
	have  int
	at    time.Time
}

type merger struct {
	cfg     MergeConfig
	timeout time.Duration
	key     *program // nil: a union
	run     runner
	now     func() time.Time
	pending map[string]*list.Element // of *join, oldest first
	order   *list.List

	*plugin.Counters
	joined, expired, replaced *plugin.Counter
	npending                  *plugin.Counter // gauge pending: stored when the joins change
	failer
}

func (m *merger) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	return m.ProcessPort(ctx, "", p, out)
}

func (m *merger) ProcessPort(_ context.Context, port string, p *packet.Packet, out plugin.Emitter) error {
	if m.key == nil {
		m.joined.Add(1)
		return out.Emit(p)
	}
	i := slices.Index(m.cfg.Ports, port)
	if i < 0 {
		if port == "" {
			return m.fail(p, fmt.Errorf("the packet came on an edge without to_port; a join needs one of ports %s", strings.Join(m.cfg.Ports, ", ")), out)
		}
		return m.fail(p, fmt.Errorf("port %q is not one of ports %s", port, strings.Join(m.cfg.Ports, ", ")), out)
	}
	m.run.env.fill(p)
	v, err := m.run.run(m.key)
	var k string
	if err == nil {
		k, err = keyString(v)
	}
	if err != nil {
		return m.fail(p, fmt.Errorf("key: %w", err), out)
	}
	now := m.now()
	var ready []portPacket
	for e := m.order.Front(); e != nil && now.Sub(e.Value.(*join).at) >= m.timeout; e = m.order.Front() {
		ready = m.expire(e, ready)
	}
	e, ok := m.pending[k]
	if !ok {
		if m.order.Len() >= m.cfg.MaxKeys {
			ready = m.expire(m.order.Front(), ready)
		}
		e = m.order.PushBack(&join{key: k, parts: make([]*packet.Packet, len(m.cfg.Ports)), at: now})
		m.pending[k] = e
	}
	j := e.Value.(*join)
	if j.parts[i] != nil {
		m.replaced.Add(1)
	} else {
		j.have++
	}
	j.parts[i] = p
	if j.have == len(j.parts) {
		m.order.Remove(e)
		delete(m.pending, k)
		m.joined.Add(1)
		ready = append(ready, portPacket{p: m.build(j)})
	}
	m.npending.Store(int64(m.order.Len()))
	return emitAll(out, ready)
}

// expire removes an incomplete join, emitting it partial when on_timeout says so.
func (m *merger) expire(e *list.Element, ready []portPacket) []portPacket {
	j := m.order.Remove(e).(*join)
	delete(m.pending, j.key)
	m.expired.Add(1)
	if m.cfg.OnTimeout == "emit" {
		ready = append(ready, portPacket{p: m.build(j)})
	}
	return ready
}

func (m *merger) build(j *join) *packet.Packet {
	pl := packet.NewMap(len(j.parts))
	var first *packet.Packet
	var a acks
	for i, p := range j.parts {
		if p == nil {
			pl.AppendNew(m.cfg.Ports[i], nil)
			continue
		}
		if first == nil || p.TS < first.TS {
			first = p
		}
		pl.AppendNew(m.cfg.Ports[i], p.Payload)
		a.add(p)
	}
	q := &packet.Packet{ID: packet.NewID(), TS: first.TS, Kind: m.cfg.OutKind, SourceID: keyDisplay(j.key), Payload: pl}
	a.set(q)
	return q
}

// Flush expires the joins left incomplete at the end of input.
func (m *merger) Flush(_ context.Context, out plugin.Emitter) error {
	var ready []portPacket
	for m.order.Len() > 0 {
		ready = m.expire(m.order.Front(), ready)
	}
	m.npending.Store(0)
	return emitAll(out, ready)
}
