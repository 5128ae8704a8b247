package mqtt_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt/mqtttest"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

const (
	sourceName = mqtt.Module + "MqttSource"
	sinkName   = mqtt.Module + "MqttSink"
	wait       = 20 * time.Second
)

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	mqtt.Register(r)
	return r
}

// build decodes cfg and constructs the node with env (its logger and
// CommitDownstream), failing on any decode error or warning.
func build(t *testing.T, name string, cfg *packet.Map, env plugin.Env) any {
	t.Helper()
	e, ok := registry().Lookup(name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	dec, warns, errs := e.Decode(cfg)
	if len(warns) > 0 || len(errs) > 0 {
		t.Fatalf("decode %s: warnings %v errors %v", name, warns, errs)
	}
	if env.NodeID == "" {
		env.NodeID = "n"
	}
	env.Plugin = name
	n, err := e.Build(dec, env)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	if err := n.(plugin.Starter).Start(context.Background()); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = n.(plugin.Closer).Close(context.Background()) })
	return n
}

func metric(n any, name string) int64 {
	for _, m := range n.(plugin.Metrics).Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	return -1
}

// running is a started source whose Run goes on in the background.
type running struct {
	n      any
	out    *plugintest.Collector
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func runSource(t *testing.T, cfg *packet.Map, env plugin.Env) *running {
	t.Helper()
	n := build(t, sourceName, cfg, env)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{n: n, out: &plugintest.Collector{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.(plugin.Source).Run(ctx, r.out) }()
	// connected is set only after the SUBACK: publishing now cannot miss
	poll.Until(t, wait, "the source to subscribe", func() bool { return metric(n, "connected") == 1 })
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		_ = r.n.(plugin.Closer).Close(context.Background())
	})
}

func (r *running) waitN(t *testing.T, n int) []*packet.Packet {
	t.Helper()
	poll.Until(t, wait, fmt.Sprintf("%d packets", n), func() bool { return len(r.out.Packets()) >= n })
	return r.out.Packets()
}

func events(n int) []*packet.Packet {
	ps := make([]*packet.Packet, n)
	for i := range ps {
		ps[i] = packet.New("event", "cam01", packet.MapOf("seq", int64(i), "zone", "door"), "", nil)
	}
	return ps
}

func TestRoundTrip(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	for _, qos := range []int64{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			topic := fmt.Sprintf("rt/q%d", qos)
			src := runSource(t, packet.MapOf("url", b.URL("tcp"), "topic", topic+"/#", "qos", qos), plugin.Env{NodeID: "src"})
			snk := build(t, sinkName, packet.MapOf("url", b.URL("tcp"), "topic", topic+"/{source_id}/{payload.zone}", "qos", qos, "forward", true), plugin.Env{NodeID: "snk"})
			poll.Until(t, wait, "the sink to connect", func() bool { return metric(snk, "connected") == 1 })
			const n = 50
			fwd := &plugintest.Collector{}
			// small batches at a moderate pace: QoS 0 has no retry, and at
			// loopback nothing is lost unless a buffer overflows
			for i, batch := 0, events(n); i < n; i += 10 {
				if err := snk.(plugin.BatchProcessor).ProcessBatch(context.Background(), batch[i:i+10], fwd); err != nil {
					t.Fatal(err)
				}
			}
			if got := len(fwd.Packets()); got != n {
				t.Fatalf("forwarded %d packets, want %d", got, n)
			}
			if got := metric(snk, "published_total"); got != n {
				t.Errorf("published_total %d, want %d", got, n)
			}
			got := src.waitN(t, n)
			seen := map[int64]bool{}
			for _, p := range got {
				m := p.Payload.(*packet.Map)
				seq, _ := m.Get("seq")
				seen[seq.(int64)] = true
				if p.Kind != "event" || p.SourceID != topic+"/cam01/door" {
					t.Fatalf("kind %q source_id %q", p.Kind, p.SourceID)
				}
				if v, _ := p.Meta.Get("mqtt_topic"); v != topic+"/cam01/door" {
					t.Errorf("meta.mqtt_topic %v", v)
				}
				if v, _ := p.Meta.Get("mqtt_qos"); v != qos {
					t.Errorf("meta.mqtt_qos %v, want %d", v, qos)
				}
				if v, _ := p.Meta.Get("mqtt_retained"); v != false {
					t.Errorf("meta.mqtt_retained %v", v)
				}
			}
			if len(got) != n || len(seen) != n {
				t.Errorf("received %d packets, %d distinct, want %d", len(got), len(seen), n)
			}
			if v := metric(src.n, "received_total"); v != n {
				t.Errorf("received_total %d", v)
			}
		})
	}
}

// TestFormats publishes each payload shape with each sink format and
// reads it back with each source payload mode.
func TestFormats(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	cases := []struct {
		name    string
		format  string // sink
		payload any
		mode    string // source
		want    any    // as the source emits it
		dropped bool   // by the sink
	}{
		{"map auto", "auto", packet.MapOf("a", int64(1)), "string", `{"a": 1}`, false},
		{"map auto to auto", "auto", packet.MapOf("a", int64(1)), "auto", packet.MapOf("a", int64(1)), false},
		{"string auto", "auto", "hello", "auto", "hello", false},
		{"string json", "json", "hello", "string", `"hello"`, false},
		{"bytes raw", "raw", []byte{0, 1, 2}, "bytes", []byte{0, 1, 2}, false},
		{"number auto", "auto", int64(42), "auto", int64(42), false},
		{"map raw dropped", "raw", packet.MapOf("a", int64(1)), "auto", nil, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topic := fmt.Sprintf("fmt/%d", i)
			src := runSource(t, packet.MapOf("url", b.URL("tcp"), "topic", topic, "payload", c.mode), plugin.Env{NodeID: "src"})
			snk := build(t, sinkName, packet.MapOf("url", b.URL("tcp"), "topic", topic, "format", c.format), plugin.Env{NodeID: "snk"})
			nacked := 0
			p := packet.New("event", "cam", c.payload, "", nil)
			p.Nack = func(error) { nacked++ }
			marker := packet.New("event", "cam", "end", "", nil)
			if err := snk.(plugin.BatchProcessor).ProcessBatch(context.Background(), []*packet.Packet{p, marker}, &plugintest.Collector{}); err != nil {
				t.Fatal(err)
			}
			got := src.waitN(t, 1)
			if c.dropped {
				if nacked != 1 || metric(snk, "dropped_total") != 1 {
					t.Errorf("nacked %d dropped_total %d, want 1 and 1", nacked, metric(snk, "dropped_total"))
				}
				if len(got) != 1 || !equal(got[0].Payload, []byte("end")) && got[0].Payload != "end" {
					t.Errorf("got %v, want only the marker", got[0].Payload)
				}
				return
			}
			if !equal(got[0].Payload, c.want) {
				t.Errorf("payload %#v, want %#v", got[0].Payload, c.want)
			}
		})
	}
}

func equal(a, b any) bool {
	ja, _ := packet.AppendJSONOpts(nil, a, packet.JSONOptions{})
	jb, _ := packet.AppendJSONOpts(nil, b, packet.JSONOptions{})
	if x, ok := a.([]byte); ok {
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	return fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b) && bytes.Equal(ja, jb)
}

// TestBadTopicPerPacket: a topic field that resolves to a wildcard or is
// missing drops that packet only.
func TestBadTopicPerPacket(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	src := runSource(t, packet.MapOf("url", b.URL("tcp"), "topic", "bad/#"), plugin.Env{NodeID: "src"})
	snk := build(t, sinkName, packet.MapOf("url", b.URL("tcp"), "topic", "bad/{payload.zone}", "forward", true), plugin.Env{NodeID: "snk"})
	in := []*packet.Packet{
		packet.New("event", "c", packet.MapOf("zone", "a/+"), "", nil),
		packet.New("event", "c", packet.MapOf("other", "x"), "", nil),
		packet.New("event", "c", packet.MapOf("zone", "#"), "", nil),
		packet.New("event", "c", packet.MapOf("zone", "ok"), "", nil),
	}
	fwd := &plugintest.Collector{}
	if err := snk.(plugin.BatchProcessor).ProcessBatch(context.Background(), in, fwd); err != nil {
		t.Fatal(err)
	}
	if got := metric(snk, "dropped_total"); got != 3 {
		t.Errorf("dropped_total %d, want 3", got)
	}
	if got := len(fwd.Packets()); got != 1 {
		t.Errorf("forwarded %d, want 1", got)
	}
	got := src.waitN(t, 1)
	if v, _ := got[0].Meta.Get("mqtt_topic"); v != "bad/ok" {
		t.Errorf("topic %v", v)
	}
	e, _ := registry().Lookup(sinkName)
	if e.Metrics[2].Name != "dropped_total" || !e.Metrics[2].Loss {
		t.Errorf("dropped_total must be a loss counter (the run ends degraded): %+v", e.Metrics[2])
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, plugin string
		cfg          *packet.Map
		key, msg     string
	}{
		{"sink wildcard +", sinkName, packet.MapOf("url", "tcp://h:1", "topic", "a/+/b"), "topic", "wildcard"},
		{"sink wildcard #", sinkName, packet.MapOf("url", "tcp://h:1", "topic", "a/#"), "topic", "wildcard"},
		{"sink unknown field", sinkName, packet.MapOf("url", "tcp://h:1", "topic", "a/{nope}"), "topic", "unknown field"},
		{"sink unclosed", sinkName, packet.MapOf("url", "tcp://h:1", "topic", "a/{kind"), "topic", "unclosed"},
		{"will with field", sinkName, packet.MapOf("url", "tcp://h:1", "topic", "a", "will_topic", "w/{kind}"), "will_topic", "plain topic"},
		{"bad scheme", sinkName, packet.MapOf("url", "http://h:1", "topic", "a"), "url", "scheme"},
		{"no url", sinkName, packet.MapOf("topic", "a"), "url", "required"},
		{"qos 3", sinkName, packet.MapOf("url", "tcp://h:1", "topic", "a", "qos", int64(3)), "qos", "qos"},
		{"source bad filter", sourceName, packet.MapOf("url", "tcp://h:1", "topic", "a/#/b"), "topic", "last level"},
		{"source partial wildcard", sourceName, packet.MapOf("url", "tcp://h:1", "topics", []any{"a/b+"}), "topics[0]", "whole level"},
		{"source no topic", sourceName, packet.MapOf("url", "tcp://h:1"), "topic", "set topic or topics"},
		{"reconnect order", sourceName, packet.MapOf("url", "tcp://h:1", "topic", "a", "reconnect_min_sec", 5.0, "reconnect_max_sec", 1.0), "reconnect_max_sec", ">="},
		{"cert without key", sourceName, packet.MapOf("url", "ssl://h:1", "topic", "a", "tls_cert_file", "c.pem"), "tls_cert_file", "together"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, _ := registry().Lookup(c.plugin)
			_, _, errs := e.Decode(c.cfg)
			found := false
			for _, fe := range errs {
				if fe.Path == c.key && strings.Contains(fe.Error(), c.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("want an error at %s containing %q, got %v", c.key, c.msg, errs)
			}
		})
	}
}

// TestWrongPassword: the refusal is logged naming node, masked URL and
// the CONNACK cause, and retried with backoff rather than in a tight loop.
func TestWrongPassword(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{Users: map[string]string{"cam": "right-pw"}})
	var logs logbuf.Buffer
	env := plugin.Env{NodeID: "pub", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	url := fmt.Sprintf("tcp://cam:url-secret@127.0.0.1:%d", b.Port)
	snk := build(t, sinkName, packet.MapOf("url", url, "topic", "a", "password", "wrong-pw",
		"reconnect_min_sec", 0.2, "reconnect_max_sec", 0.4), env)
	poll.Until(t, wait, "a logged refusal", func() bool { return strings.Contains(logs.String(), "attempt=3") })
	out := logs.String()
	t.Log(out)
	for _, want := range []string{`node=pub`, `CONNACK return code 5`, `check username and password`, `127.0.0.1`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"wrong-pw", "url-secret", "right-pw"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows the secret %q:\n%s", secret, out)
		}
	}
	if metric(snk, "connected") != 0 {
		t.Error("connected with a wrong password")
	}
	// the right password connects
	ok := build(t, sinkName, packet.MapOf("url", b.URL("tcp"), "topic", "a", "username", "cam", "password", "right-pw"), plugin.Env{NodeID: "ok"})
	poll.Until(t, wait, "the right password to connect", func() bool { return metric(ok, "connected") == 1 })
}
