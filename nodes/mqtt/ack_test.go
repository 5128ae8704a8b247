package mqtt_test

import (
	"context"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/mqtt/mqtttest"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// TestDeferredAck: with a durable sink downstream (CommitDownstream) a
// QoS 1 message is acknowledged only when packet.Ack is called, so a
// persistent session gets it again after a restart; once acked it does
// not come back. Without one, it is acknowledged when emitted.
func TestDeferredAck(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	cases := []struct {
		name   string
		commit bool
	}{{"commit downstream", true}, {"no commit downstream", false}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topic := "ack/" + map[bool]string{true: "c", false: "n"}[c.commit]
			cfg := packet.MapOf("url", b.URL("tcp"), "topic", topic, "qos", int64(1), "clean_start", false, "client_id", "ack-"+topic[4:])
			env := plugin.Env{NodeID: "src", CommitDownstream: c.commit}
			snk := build(t, sinkName, packet.MapOf("url", b.URL("tcp"), "topic", topic), plugin.Env{NodeID: "pub"})
			publish := func(s string) {
				t.Helper()
				if err := snk.(plugin.BatchProcessor).ProcessBatch(context.Background(), []*packet.Packet{packet.New("event", "x", s, "", nil)}, &plugintest.Collector{}); err != nil {
					t.Fatal(err)
				}
			}

			first := runSource(t, cfg, env) // makes the session
			publish("one")
			p := first.waitN(t, 1)[0]
			if (p.Ack != nil) != c.commit {
				t.Fatalf("packet.Ack set: %v, want %v", p.Ack != nil, c.commit)
			}
			first.stop() // not acked (when deferred)

			second := runSource(t, cfg, env)
			publish("marker")
			got := second.waitN(t, 1)
			if c.commit {
				if got[0].Payload != "one" {
					t.Fatalf("after a restart got %v first, want the unacked message again", got[0].Payload)
				}
				got = second.waitN(t, 2)
				for _, p := range got {
					p.Ack()
				}
			} else if got[0].Payload != "marker" {
				t.Fatalf("after a restart got %v, want only the marker (the first was acked on emit)", got[0].Payload)
			}
			second.stop()

			third := runSource(t, cfg, env)
			publish("last")
			if got := third.waitN(t, 1); got[0].Payload != "last" {
				t.Fatalf("after acking, a restart got %v, want only the new message", got[0].Payload)
			}
		})
	}
}
