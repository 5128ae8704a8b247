// Command mqtt measures MqttSink and MqttSource against a plain
// paho.mqtt.golang publisher and subscriber through the same broker, in
// one run, and prints msgs/s side by side with the ratio
// (scripts/bench-mqtt starts mosquitto and runs this).
//
// publish:   N messages at -qos, at most -window unconfirmed at once
// (plain: paho Publish and token waits; ours: MqttSink.ProcessBatch with
// batches of -window).
// subscribe: N messages queued by the broker for a persistent session
// while it was away, then drained (plain: a paho handler counting; ours:
// MqttSource.Run into a counting emitter), so the publisher's speed does
// not count.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/schnitzel-stream/schnitzel/nodes/mqtt"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

var (
	url    = flag.String("url", "tcp://127.0.0.1:1883", "broker URL")
	n      = flag.Int("n", 50000, "messages per measurement")
	qos    = flag.Int("qos", 1, "QoS")
	window = flag.Int("window", 0, "publishes in flight (and the sink's batch size); 0: 256, 20 at QoS 2 (mosquitto's limit)")
	rounds = flag.Int("rounds", 3, "rounds; the best of each is reported")
	prof   = flag.String("cpuprofile", "", "write a CPU profile of the sink's publish rounds here")
)

func main() {
	flag.Parse()
	if *window <= 0 {
		*window = 256
		if *qos == 2 {
			*window = 20
		}
	}
	reg := plugin.NewRegistry()
	mqtt.Register(reg)
	body := []byte(`{"seq": 0, "camera_id": "cam01", "event_type": "ZONE_INTRUSION", "object_type": "PERSON", "confidence": 0.91}`)
	best := func(f func(round int) float64) float64 {
		b := 0.0
		for r := range *rounds {
			if v := f(r); v > b {
				b = v
			}
		}
		return b
	}
	plainPub := best(func(r int) float64 { return plainPublish(fmt.Sprintf("bench/plain/%d", r), body) })
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fail("%v", err)
		}
		_ = pprof.StartCPUProfile(f)
	}
	sinkPub := best(func(r int) float64 { return sinkPublish(reg, fmt.Sprintf("bench/sink/%d", r), body) })
	if *prof != "" {
		pprof.StopCPUProfile()
	}
	plainSub := best(func(r int) float64 { return subscribe(reg, false, r, body) })
	srcSub := best(func(r int) float64 { return subscribe(reg, true, r, body) })
	fmt.Printf("N=%d qos=%d window=%d body=%d B, best of %d\n", *n, *qos, *window, len(body), *rounds)
	fmt.Printf("%-10s %14s %14s %7s\n", "", "plain paho", "schnitzel", "ratio")
	fmt.Printf("%-10s %10.0f m/s %10.0f m/s %6.0f%%\n", "publish", plainPub, sinkPub, 100*sinkPub/plainPub)
	fmt.Printf("%-10s %10.0f m/s %10.0f m/s %6.0f%%\n", "subscribe", plainSub, srcSub, 100*srcSub/plainSub)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func client(id string, clean bool, h paho.MessageHandler) paho.Client {
	o := paho.NewClientOptions().AddBroker(*url).SetClientID(id).SetCleanSession(clean).SetAutoReconnect(false)
	if h != nil {
		o.SetDefaultPublishHandler(h)
	}
	c := paho.NewClient(o)
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		fail("connect %s: %v", id, t.Error())
	}
	return c
}

func plainPublish(topic string, body []byte) float64 {
	c := client("bench-plain-pub", true, nil)
	defer c.Disconnect(100)
	toks := make([]paho.Token, 0, *window)
	t0 := time.Now()
	for i := 0; i < *n; i += *window {
		toks = toks[:0]
		for j := i; j < min(i+*window, *n); j++ {
			toks = append(toks, c.Publish(topic, byte(*qos), false, body))
		}
		for _, t := range toks {
			t.Wait()
			if t.Error() != nil {
				fail("publish: %v", t.Error())
			}
		}
	}
	return float64(*n) / time.Since(t0).Seconds()
}

func build(reg *plugin.Registry, name string, cfg *packet.Map) any {
	e, _ := reg.Lookup(name)
	dec, _, errs := e.Decode(cfg)
	if len(errs) > 0 {
		fail("%s: %v", name, errs)
	}
	node, err := e.Build(dec, plugin.Env{NodeID: "bench", Plugin: name})
	if err != nil {
		fail("%v", err)
	}
	if err := node.(plugin.Starter).Start(context.Background()); err != nil {
		fail("%v", err)
	}
	return node
}

func connected(node any) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range node.(plugin.Metrics).Metrics() {
			if m.Name == "connected" && m.Value == 1 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	fail("node did not connect")
}

type discard struct{ n atomic.Int64 }

func (d *discard) Emit(*packet.Packet) error { d.n.Add(1); return nil }

func (d *discard) EmitPort(string, *packet.Packet) error { d.n.Add(1); return nil }

func sinkPublish(reg *plugin.Registry, topic string, body []byte) float64 {
	payload, err := packet.DecodeJSON(body)
	if err != nil {
		fail("%v", err)
	}
	s := build(reg, mqtt.Module+"MqttSink", packet.MapOf("url", *url, "topic", topic, "qos", int64(*qos),
		"client_id", "bench-sink", "max_in_flight", int64(*window)))
	defer s.(plugin.Closer).Close(context.Background())
	connected(s)
	// the packets exist before the clock starts, as the plain client's body
	// does: what is timed is the sink (topic, JSON body, publish, confirm)
	all := make([]*packet.Packet, *n)
	for i := range all {
		all[i] = packet.New("event", "cam01", payload, "", nil)
	}
	out := &discard{}
	t0 := time.Now()
	for i := 0; i < *n; i += *window {
		if err := s.(plugin.BatchProcessor).ProcessBatch(context.Background(), all[i:min(i+*window, *n)], out); err != nil {
			fail("sink: %v", err)
		}
	}
	return float64(*n) / time.Since(t0).Seconds()
}

// subscribe queues N messages for a persistent session, then times the
// drain by the plain client (ours false) or MqttSource.
func subscribe(reg *plugin.Registry, ours bool, round int, body []byte) float64 {
	id := fmt.Sprintf("bench-sub-%v-%d", ours, round)
	topic := fmt.Sprintf("bench/sub/%v/%d", ours, round)
	// make the session and its subscription, then go away
	c := client(id, false, nil)
	if t := c.Subscribe(topic, byte(*qos), nil); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		fail("subscribe: %v", t.Error())
	}
	c.Disconnect(100)
	pub := client(id+"-pub", true, nil)
	for i := 0; i < *n; i++ {
		t := pub.Publish(topic, byte(*qos), false, body)
		if i%*window == 0 || i == *n-1 {
			t.Wait()
		}
	}
	pub.Disconnect(500)

	var got atomic.Int64
	done := make(chan struct{})
	var t0 time.Time
	if !ours {
		t0 = time.Now()
		c := client(id, false, func(_ paho.Client, _ paho.Message) {
			if got.Add(1) == int64(*n) {
				close(done)
			}
		})
		defer c.Disconnect(100)
		wait(done, &got)
		return float64(*n) / time.Since(t0).Seconds()
	}
	t0 = time.Now()
	src := build(reg, mqtt.Module+"MqttSource", packet.MapOf("url", *url, "topic", topic, "qos", int64(*qos),
		"clean_start", false, "client_id", id, "payload", "auto"))
	ctx, cancel := context.WithCancel(context.Background())
	out := &counting{n: &got, want: int64(*n), done: done}
	go func() { _ = src.(plugin.Source).Run(ctx, out) }()
	wait(done, &got)
	rate := float64(*n) / time.Since(t0).Seconds()
	cancel()
	_ = src.(plugin.Closer).Close(context.Background())
	return rate
}

type counting struct {
	n    *atomic.Int64
	want int64
	done chan struct{}
}

func (c *counting) Emit(*packet.Packet) error {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return nil
}

func (c *counting) EmitPort(_ string, p *packet.Packet) error { return c.Emit(p) }

func wait(done chan struct{}, got *atomic.Int64) {
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		fail("received %d of %d", got.Load(), *n)
	}
}
