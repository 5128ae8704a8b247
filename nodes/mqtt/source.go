package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SourceConfig is MqttSource's config.
type SourceConfig struct {
	ConnConfig `yaml:",inline"`
	Topic      string   `yaml:"topic" example:"frigate/events|cams/+/detections|sensors/#" doc:"Topic filter to subscribe to (wildcards + and # allowed). One of topic and topics, or both."`
	Topics     []string `yaml:"topics" doc:"More topic filters, all at qos."`
	Payload    string   `yaml:"payload" enum:"auto,json,string,bytes" doc:"How a message body becomes the payload. auto: JSON when it parses as JSON (a bare number or quoted string too), else a string. json: JSON, else on_bad_json. string: the body as a string. bytes: the body as bytes (an in-process payload, not for JSON sinks)."`
	OnBadJSON  string   `yaml:"on_bad_json" enum:"string,drop" doc:"payload json, body not JSON: string (emit the body as a string) or drop (acknowledge and count it, bad_payload_total). Either way counted."`
	Kind       string   `yaml:"kind" doc:"Packet kind of the emitted packets (event: what most MQTT messages are; raw or bytes for opaque bodies)."`
	SourceID   string   `yaml:"source_id" doc:"source_id of the emitted packets. Empty: the message's topic."`
	MaxPending int64    `yaml:"max_pending" advanced:"true" doc:"Messages received but not yet emitted (1 to 65535). When full, the client stops reading the socket, which pushes back on the broker (it holds further messages)."`
}

// Validate checks the connection keys and the filters.
func (c *SourceConfig) Validate() error {
	errs := []error{c.ConnConfig.validate()}
	if c.Topic == "" && len(c.Topics) == 0 {
		errs = append(errs, plugin.Errorf("topic", "set topic or topics"))
	}
	if c.Topic != "" {
		if err := checkFilter(c.Topic); err != nil {
			errs = append(errs, plugin.Errorf("topic", "%v", err))
		}
	}
	for i, t := range c.Topics {
		if err := checkFilter(t); err != nil {
			errs = append(errs, plugin.Errorf(fmt.Sprintf("topics[%d]", i), "%v", err))
		}
	}
	if c.Kind == "" {
		errs = append(errs, plugin.Errorf("kind", "must not be empty"))
	}
	if c.MaxPending < 1 || c.MaxPending > 65535 {
		errs = append(errs, plugin.Errorf("max_pending", "must be 1 to 65535, got %d", c.MaxPending))
	}
	return errors.Join(errs...)
}

func (c *SourceConfig) filters() map[string]byte {
	m := map[string]byte{}
	if c.Topic != "" {
		m[c.Topic] = byte(c.QoS)
	}
	for _, t := range c.Topics {
		m[t] = byte(c.QoS)
	}
	return m
}

var sourceDefaults = SourceConfig{ConnConfig: connDefaults, Payload: "auto", OnBadJSON: "string", Kind: "event", MaxPending: 256}

func registerSource(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[SourceConfig]{
		Name:      Module + "MqttSource",
		Role:      plugin.RoleSource,
		Out:       []string{"*"},
		Stability: plugin.Experimental,
		Summary:   "Subscribe to MQTT 3.1.1 topics; QoS 1/2 messages are acknowledged only once a durable sink downstream committed them.",
		Description: "Each message becomes one packet (kind, source_id = the topic unless set) with meta mqtt_topic, " +
			"mqtt_qos, mqtt_retained and mqtt_message_id. Runs until the graph stops (--max-events bounds it).\n\n" +
			"Acknowledgement: when a node that commits durably (SqliteQueueSink) follows, a QoS 1/2 message is acknowledged " +
			"(PUBACK/PUBREC) only after that commit (packet.Ack); otherwise when the graph took the packet. With clean_start: " +
			"false and a fixed client_id, messages not yet acknowledged when the process died come back on the next start " +
			"(at least once). Note that the broker sends only so many unacknowledged messages at once (mosquitto's " +
			"max_inflight_messages, 20 by default), and a packet dropped downstream before the commit is not acknowledged " +
			"until the session is resumed.\n\n" +
			"Bounded: at most max_pending messages wait between the client and the graph; beyond that the client stops " +
			"reading and the broker holds the rest. The subscription is made again on every reconnect. See docs/connectors-mqtt.md.",
		Metrics: append([]plugin.MetricSpec{
			{Name: "received_total", Help: "Messages emitted as packets."},
			{Name: "bad_payload_total", Help: "Bodies that were not JSON with payload: json (emitted as strings, or dropped with on_bad_json: drop).", Loss: true},
		}, connMetrics...),
		Defaults: sourceDefaults,
		NewSource: func(c SourceConfig, env plugin.Env) (plugin.Source, error) {
			cs := env.Counters()
			return &source{cfg: c, env: env, stop: make(chan struct{}), Counters: cs,
				received: cs.Get("received_total"), bad: cs.Get("bad_payload_total"), st: newConnStats(cs)}, nil
		},
	})
}

type source struct {
	cfg  SourceConfig
	env  plugin.Env
	c    *conn
	msgs chan paho.Message

	stop     chan struct{}
	stopOnce sync.Once

	*plugin.Counters
	received, bad *plugin.Counter
	st            connStats // the conn's, taken with the node's counters
	badLog        plugin.RateLog
}

// Start builds the client and starts connecting in the background.
func (s *source) Start(context.Context) error {
	s.msgs = make(chan paho.Message, s.cfg.MaxPending)
	handler := func(_ paho.Client, m paho.Message) {
		// Blocking here stops paho reading the socket: that is the
		// backpressure to the broker.
		select {
		case s.msgs <- m:
		case <-s.stop:
		}
	}
	c, err := newConn(s.env.NodeID, s.cfg.ConnConfig, s.env, s.st, func(o *paho.ClientOptions) {
		// Messages of a resumed session can arrive before SUBSCRIBE.
		o.SetDefaultPublishHandler(handler).SetAutoAckDisabled(true).SetOrderMatters(true)
	})
	if err != nil {
		return err
	}
	filters := s.cfg.filters()
	c.onConnect = func(cl paho.Client) error {
		tok := cl.SubscribeMultiple(filters, handler)
		select {
		case <-tok.Done():
		case <-s.stop:
			return errStopped
		}
		if !tok.WaitTimeout(s.cfg.ConnectTimeoutSec.Duration()) {
			return errors.New("no SUBACK in time")
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		for f, code := range tok.(*paho.SubscribeToken).Result() {
			if code == 0x80 {
				return fmt.Errorf("subscribe: the broker refused topic filter %q", f)
			}
		}
		return nil
	}
	s.c = c
	c.start()
	return nil
}

// Run emits messages until ctx ends or the graph stops taking them.
func (s *source) Run(ctx context.Context, out plugin.Emitter) error {
	if s.c == nil {
		return fmt.Errorf("node %q: not started", s.env.NodeID)
	}
	deferAck := s.env.CommitDownstream
	for {
		if ctx.Err() != nil {
			return nil
		}
		var m paho.Message
		select {
		case <-ctx.Done():
			return nil
		case m = <-s.msgs:
		}
		p, ok := s.packet(m)
		if !ok {
			m.Ack() // dropped on purpose: the broker need not send it again
			continue
		}
		if deferAck && m.Qos() > 0 {
			p.Ack = m.Ack
		}
		if err := out.Emit(p); err != nil {
			if errors.Is(err, plugin.ErrStop) {
				return nil // not taken: not acked, the broker sends it again
			}
			return err
		}
		s.received.Add(1)
		if !deferAck {
			m.Ack()
		}
	}
}

func (s *source) packet(m paho.Message) (*packet.Packet, bool) {
	body := m.Payload()
	var payload any
	switch s.cfg.Payload {
	case "string":
		payload = string(body)
	case "bytes":
		payload = append([]byte(nil), body...)
	case "auto":
		v, err := packet.DecodeJSON(body)
		if err != nil {
			v = string(body)
		}
		payload = v
	case "json":
		v, err := packet.DecodeJSON(body)
		if err != nil {
			s.bad.Add(1)
			s.badLog.Warn(s.env.Logger, "mqtt: message body is not JSON", "node", s.env.NodeID, "topic", m.Topic(),
				"on_bad_json", s.cfg.OnBadJSON, "error", err.Error())
			if s.cfg.OnBadJSON == "drop" {
				return nil, false
			}
			v = string(body)
		}
		payload = v
	}
	src := s.cfg.SourceID
	if src == "" {
		src = m.Topic()
	}
	meta := packet.MapOf(
		"mqtt_topic", m.Topic(),
		"mqtt_qos", int64(m.Qos()),
		"mqtt_retained", m.Retained(),
		"mqtt_message_id", int64(m.MessageID()),
	)
	p := packet.New(s.cfg.Kind, src, payload, "", nil)
	p.Meta = meta
	return p, true
}

// Stopping implements plugin.Stopper: a handler blocked on a full queue returns.
func (s *source) Stopping() { s.stopOnce.Do(func() { close(s.stop) }) }

// Close disconnects. Messages received and not emitted are not
// acknowledged: with a persistent session the broker sends them again.
func (s *source) Close(ctx context.Context) error {
	s.Stopping()
	if s.c != nil {
		s.c.close(ctx)
	}
	return nil
}
