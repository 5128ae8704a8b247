//go:build !windows

package test

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt/mqtttest"
)

// TestFrigateEventsOverMQTT runs the shipped graph
// (configs/graphs/frigate_events_mqtt_v2.yaml) against a real Mosquitto:
// a subscriber on frigate/events sees one tracked person as new, update,
// update, end, in Frigate's shape (before/after, one id, zones entered).
func TestFrigateEventsOverMQTT(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.mqtt:MqttSink", "schnitzel_stream.packs.vision.nodes:FrigateEventNode")
	b := mqtttest.Start(t, mqtttest.Options{})
	type object struct {
		ID           string    `json:"id"`
		Camera       string    `json:"camera"`
		Label        string    `json:"label"`
		Score        float64   `json:"score"`
		Box          []float64 `json:"box"`
		StartTime    float64   `json:"start_time"`
		EndTime      *float64  `json:"end_time"`
		CurrentZones []string  `json:"current_zones"`
		EnteredZones []string  `json:"entered_zones"`
	}
	type message struct {
		Type   string  `json:"type"`
		Before *object `json:"before"`
		After  *object `json:"after"`
	}
	var mu sync.Mutex
	var got []message
	var bad []string
	handler := func(_ paho.Client, m paho.Message) {
		var msg message
		mu.Lock()
		defer mu.Unlock()
		if err := json.Unmarshal(m.Payload(), &msg); err != nil || msg.After == nil || msg.Before == nil {
			bad = append(bad, string(m.Payload()))
			return
		}
		got = append(got, msg)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL("tcp")).SetClientID("frigate-sub"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("frigate/events", 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	r := run(t, t.TempDir(), []string{"MQTT_URL=" + b.URL("tcp")}, "--graph", filepath.Join(root, "configs", "graphs", "frigate_events_mqtt_v2.yaml"))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	poll.Until(t, 20*time.Second, "4 messages on frigate/events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got)+len(bad) >= 4 })
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("messages not in Frigate's shape: %q", bad)
	}
	want := []string{"new", "update", "update", "end"}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %v", len(got), want)
	}
	for i, m := range got {
		if m.Type != want[i] {
			t.Errorf("message %d: type %q, want %q", i, m.Type, want[i])
		}
		a := m.After
		if a.ID != got[0].After.ID || a.Camera != "cam01" || a.Label != "person" || a.Score != 0.75 || len(a.Box) != 4 || a.StartTime == 0 {
			t.Errorf("message %d after: %+v", i, a)
		}
		if len(a.EnteredZones) != 1 || a.EnteredZones[0] != "Z1" {
			t.Errorf("message %d entered_zones %v", i, a.EnteredZones)
		}
		if (a.EndTime != nil) != (m.Type == "end") {
			t.Errorf("message %d (%s): end_time %v", i, m.Type, a.EndTime)
		}
	}
}
