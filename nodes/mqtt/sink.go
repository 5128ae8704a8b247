package mqtt

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SinkConfig is MqttSink's config.
type SinkConfig struct {
	ConnConfig  `yaml:",inline"`
	Topic       string `yaml:"topic" required:"true" example:"cams/{source_id}/events|frigate/events" doc:"Topic to publish to: a template of literal text and packet fields {source_id}, {kind}, {packet_id}, {payload.key}, {meta.key} (dotted keys reach into nested maps; {{ and }} are literal braces). Wildcards (+, #) are a config error; a packet whose fields resolve to a wildcard, an empty topic or a missing key is dropped (dropped_total) and nacked."`
	Retain      bool   `yaml:"retain" doc:"Publish with the retain flag: the broker keeps the last message per topic for new subscribers."`
	Format      string `yaml:"format" enum:"auto,json,raw,packet" doc:"Message body. auto: a string payload as its bytes, a bytes payload as is, anything else (maps, lists, numbers, booleans, null) as JSON. json: the payload as JSON always (a string is quoted). raw: strings and bytes only, other payloads are dropped. packet: the whole packet {packet_id, ts, kind, source_id, payload, meta} as JSON, so that a receiver can deduplicate on packet_id."`
	Forward     bool   `yaml:"forward" doc:"Emit each packet once the broker confirmed it (PUBACK at QoS 1, PUBCOMP at QoS 2, written at QoS 0), so that an ack sink after this node (kind: node) acknowledges only delivered packets."`
	MaxInFlight int64  `yaml:"max_in_flight" advanced:"true" doc:"Publishes awaiting the broker's confirmation at once (1 to 65535): a batch is published in windows of this many. 0: 256 at QoS 0 and 1, 20 at QoS 2 (mosquitto drops a client that has more incoming QoS 2 messages in flight than its max_inflight_messages, 20 by default)."`
	WillTopic   string `yaml:"will_topic" doc:"Last-will topic: the broker publishes will_payload there when this client vanishes without disconnecting. Empty: no will."`
	WillPayload string `yaml:"will_payload" doc:"Last-will message body."`
	WillQoS     int64  `yaml:"will_qos" enum:"0,1,2" doc:"QoS of the last will."`
	WillRetain  bool   `yaml:"will_retain" doc:"Retain flag of the last will."`
}

// Validate checks the connection keys, the topic template and the will.
func (c *SinkConfig) Validate() error {
	errs := []error{c.ConnConfig.validate()}
	if _, err := parseTemplate(c.Topic); err != nil {
		errs = append(errs, plugin.Errorf("topic", "%v", err))
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > 65535 {
		errs = append(errs, plugin.Errorf("max_in_flight", "must be 0 (auto) to 65535, got %d", c.MaxInFlight))
	}
	if c.WillQoS < 0 || c.WillQoS > 2 {
		errs = append(errs, plugin.Errorf("will_qos", "must be 0, 1 or 2, got %d", c.WillQoS))
	}
	if c.WillTopic != "" {
		t, err := parseTemplate(c.WillTopic)
		if _, static := t.staticOK(); err != nil || !static {
			errs = append(errs, plugin.Errorf("will_topic", "must be a plain topic without wildcards or {fields}, got %q", c.WillTopic))
		}
	} else if c.WillPayload != "" {
		errs = append(errs, plugin.Errorf("will_payload", "set, but will_topic is empty"))
	}
	return errors.Join(errs...)
}

func (t *template) staticOK() (string, bool) {
	if t == nil {
		return "", false
	}
	return t.static()
}

var sinkDefaults = SinkConfig{ConnConfig: connDefaults, Format: "auto"}

func registerSink(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[SinkConfig]{
		Name:      Module + "MqttSink",
		Role:      plugin.RoleSink,
		In:        []string{"*"},
		Out:       []string{"*"},
		Stability: plugin.Experimental,
		Summary:   "Publish packets to an MQTT 3.1.1 broker, waiting for PUBACK/PUBCOMP, riding out broker outages without losing or acking.",
		Description: "Each input batch is published in windows of max_in_flight asynchronous publishes; ProcessBatch returns " +
			"only when the broker confirmed every one (at QoS 1 and 2), so with forward: true in front of SqliteQueueAckSink a " +
			"queued packet is acked only after the broker has it.\n\n" +
			"While the broker is away the node blocks (the graph's backpressure reaches its source) and reconnects forever, " +
			"reconnect_min_sec doubling to reconnect_max_sec with jitter; nothing is dropped or acked meanwhile. A publish whose " +
			"connection was lost before its confirmation is sent again after the reconnect: delivery is at least once, a " +
			"receiver deduplicates on packet_id (format: packet). A graceful stop while waiting leaves the rest unsent, neither " +
			"forwarded nor nacked (left_on_stop_total), for the durable source to offer again.\n\n" +
			"MQTT 5 is not supported (paho.mqtt.golang speaks 3.1.1; no approved MQTT 5 client is available). See " +
			"docs/connectors-mqtt.md.",
		Metrics: append([]plugin.MetricSpec{
			{Name: "published_total", Help: "Messages the broker confirmed (PUBACK/PUBCOMP; written, at QoS 0)."},
			{Name: "retries_total", Help: "Publishes sent again because the connection was lost before their confirmation."},
			{Name: "dropped_total", Help: "Packets dropped and nacked: topic unresolvable (missing field, wildcard, empty) or a body the format cannot write.", Loss: true},
			{Name: "left_on_stop_total", Help: "Packets a graceful stop left unpublished: neither forwarded nor nacked.", Loss: true},
		}, connMetrics...),
		Defaults: sinkDefaults,
		NewBatchProcessor: func(c SinkConfig, env plugin.Env) (plugin.BatchProcessor, error) {
			t, err := parseTemplate(c.Topic)
			if err != nil {
				return nil, fmt.Errorf("node %q: topic: %w", env.NodeID, err)
			}
			cs := env.Counters()
			return &sink{cfg: c, env: env, topic: t, stopping: make(chan struct{}), Counters: cs,
				published: cs.Get("published_total"), retries: cs.Get("retries_total"), dropped: cs.Get("dropped_total"),
				leftOnStop: cs.Get("left_on_stop_total"), st: newConnStats(cs)}, nil
		},
	})
}

type sink struct {
	cfg   SinkConfig
	env   plugin.Env
	topic *template
	c     *conn

	stopping chan struct{}
	stopOnce sync.Once

	*plugin.Counters
	published, retries, dropped, leftOnStop *plugin.Counter
	st                                      connStats // the conn's, taken with the node's counters
	dropLog, retryLog                       plugin.RateLog
}

// Start builds the client and starts connecting in the background: a
// broker that is away at start is an outage like any other.
func (s *sink) Start(context.Context) error {
	c, err := newConn(s.env.NodeID, s.cfg.ConnConfig, s.env, s.st, func(o *paho.ClientOptions) {
		if s.cfg.WillTopic != "" {
			o.SetWill(s.cfg.WillTopic, s.cfg.WillPayload, byte(s.cfg.WillQoS), s.cfg.WillRetain)
		}
	})
	if err != nil {
		return err
	}
	s.c = c
	c.start()
	return nil
}

type job struct {
	p     *packet.Packet
	topic string
	body  []byte
}

// ProcessBatch publishes batch and returns once the broker confirmed all of it.
func (s *sink) ProcessBatch(ctx context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	if s.c == nil {
		return fmt.Errorf("node %q: not started", s.env.NodeID)
	}
	jobs := make([]job, 0, len(batch))
	// one buffer holds the batch's JSON bodies: paho keeps each body until
	// it is written, and a slice of a buffer that grew still points at the
	// old array, so nothing is overwritten
	var buf []byte
	for _, p := range batch {
		topic, err := s.topic.resolve(p)
		var body []byte
		if err == nil {
			start := len(buf)
			var own bool
			body, own, err = s.body(buf, p)
			if own {
				buf = body
				body = buf[start:len(buf):len(buf)]
			}
		}
		if err != nil {
			s.dropped.Add(1)
			s.dropLog.Warn(s.env.Logger, "mqtt: packet dropped", "node", s.env.NodeID, "packet_id", p.ID, "error", err.Error())
			if p.Nack != nil {
				p.Nack(fmt.Errorf("node %q: %w", s.env.NodeID, err))
			}
			continue
		}
		jobs = append(jobs, job{p, topic, body})
	}
	qos := byte(s.cfg.QoS)
	window := int(s.cfg.MaxInFlight)
	switch {
	case window > 0:
	case s.cfg.QoS == 2:
		window = 20
	default:
		window = 256
	}
	toks := make([]paho.Token, 0, min(window, len(jobs)))
	for round := 1; len(jobs) > 0; round++ {
		if err := s.c.waitUp(ctx, s.stopping); err != nil {
			return s.giveUp(ctx, jobs)
		}
		var failed []job
		for start := 0; start < len(jobs); start += window {
			chunk := jobs[start:min(start+window, len(jobs))]
			toks = toks[:0]
			for _, j := range chunk {
				toks = append(toks, s.c.client.Publish(j.topic, qos, s.cfg.Retain, j.body))
			}
			for i, t := range toks {
				select {
				case <-t.Done():
				case <-ctx.Done():
					return ctx.Err()
				case <-s.stopping:
					// a confirmation may still come; the durable source
					// offers the rest again, so a duplicate at worst
					return s.giveUp(ctx, append(failed, jobs[start+i:]...))
				}
				if err := t.Error(); err != nil {
					failed = append(failed, chunk[i])
					continue
				}
				s.published.Add(1)
				if s.cfg.Forward {
					if err := out.Emit(chunk[i].p); err != nil {
						return err
					}
				}
			}
		}
		if len(failed) > 0 {
			s.retries.Add(int64(len(failed)))
			wait := plugin.Backoff(round, s.cfg.ReconnectMinSec.Duration(), s.cfg.ReconnectMaxSec.Duration(), rand.Float64())
			s.retryLog.Warn(s.env.Logger, "mqtt: publish not confirmed, retrying after reconnect", "node", s.env.NodeID,
				"url", s.c.masked, "packets", len(failed), "retry_in", wait.String())
			if !s.sleep(ctx, wait) {
				return s.giveUp(ctx, failed)
			}
		}
		jobs = failed
	}
	return nil
}

// giveUp ends a batch unfinished: on ctx's end an error, on a graceful
// stop the rest left for the durable source.
func (s *sink) giveUp(ctx context.Context, rest []job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.leftOnStop.Add(int64(len(rest)))
	return nil
}

func (s *sink) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.stopping:
	}
	return false
}

// body is the message for p in the configured format. JSON is appended
// to buf (own: the result is buf grown); strings and bytes are their own.
func (s *sink) body(buf []byte, p *packet.Packet) (b []byte, own bool, err error) {
	opts := packet.JSONOptions{Strict: true, Path: "payload"}
	switch s.cfg.Format {
	case "packet":
		o := opts
		o.Path = ""
		b, err = packet.AppendPacketJSON(buf, p, o)
		return b, err == nil, err
	case "json":
		b, err = packet.AppendJSONOpts(buf, p.Payload, opts)
		return b, err == nil, err
	}
	switch x := p.Payload.(type) {
	case string:
		return []byte(x), false, nil
	case []byte:
		return x, false, nil
	}
	if s.cfg.Format == "raw" {
		return nil, false, fmt.Errorf("format raw: payload is %T, not a string or bytes", p.Payload)
	}
	b, err = packet.AppendJSONOpts(buf, p.Payload, opts)
	return b, err == nil, err
}

// Stopping implements plugin.Stopper: a batch waiting for the broker ends.
func (s *sink) Stopping() { s.stopOnce.Do(func() { close(s.stopping) }) }

// Close disconnects (waiting up to 250 ms for confirmations in flight).
func (s *sink) Close(ctx context.Context) error {
	s.Stopping()
	if s.c != nil {
		s.c.close(ctx)
	}
	return nil
}
