//go:build !windows

package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt/mqtttest"
)

// mqttRun is one schnitzel process on a graph, with its output kept.
type mqttRun struct {
	p          *proc
	out, errb  *lockedBuffer
	metricsURL string
}

func startMQTTGraph(t *testing.T, dir, graph string, env []string) *mqttRun {
	t.Helper()
	cmd := exec.Command(bin, "--graph", graph, "--report-json", "--metrics-addr", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	r := &mqttRun{out: &lockedBuffer{done: make(chan struct{})}, errb: &lockedBuffer{done: make(chan struct{})}}
	close(r.out.done)
	close(r.errb.done)
	cmd.Stdout = writerFunc(func(b []byte) (int, error) { r.out.write(string(b)); return len(b), nil })
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { r.errb.write(string(b)); return len(b), nil })
	r.p = start(t, cmd)
	addr := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	if !poll.Wait(20*time.Second, func() bool { return addr.MatchString(r.errb.String()) }) {
		t.Fatalf("no metrics address:\n%s", r.errb.String())
	}
	r.metricsURL = "http://" + addr.FindStringSubmatch(r.errb.String())[1] + "/metrics"
	return r
}

// metric reads a node's metric from the run's /metrics; -1 when absent.
func (r *mqttRun) metric(t *testing.T, node, name string) float64 {
	t.Helper()
	return scrapeMetric(r.metricsURL, node, name)
}

// subscriber is a plain paho client that records the seq of every
// packet it receives (format: packet bodies), on a persistent session so
// that nothing published while it reconnects is missed.
type subscriber struct {
	mu    sync.Mutex
	seqs  map[int64]int
	total int
	bad   []string
}

func subscribe(t *testing.T, url, topic string) *subscriber {
	t.Helper()
	s := &subscriber{seqs: map[int64]int{}}
	handler := func(_ paho.Client, m paho.Message) {
		var env struct {
			PacketID string `json:"packet_id"`
			Payload  struct {
				Seq *int64 `json:"seq"`
			} `json:"payload"`
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total++
		if err := json.Unmarshal(m.Payload(), &env); err != nil || env.Payload.Seq == nil || env.PacketID == "" {
			s.bad = append(s.bad, string(m.Payload()))
			return
		}
		s.seqs[*env.Payload.Seq]++
	}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("e2e-subscriber").SetCleanSession(false).
		SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).SetResumeSubs(true).
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c paho.Client) { c.Subscribe(topic, 1, handler) })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := c.Subscribe(topic, 1, handler)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return s
}

func (s *subscriber) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seqs)
}

// TestMQTTForwardSurvivesBrokerRestart runs the shipped queue -> MQTT graph
// (configs/graphs/mqtt_forward_v2.yaml) as a process while the broker is
// stopped mid-stream and started again on the same port: every queued
// packet reaches the subscriber (at least once), the queue drains, and
// the sink saw the outage (disconnects and reconnects).
func TestMQTTForwardSurvivesBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker outage test")
	}
	requirePlugins(t, "schnitzel_stream.nodes.mqtt:MqttSink")
	b := mqtttest.Start(t, mqtttest.Options{Persist: true})
	const count = 3000
	dir := t.TempDir()
	r := run(t, dir, []string{fmt.Sprintf("SF_COUNT=%d", count), "SF_INTERVAL_SEC=0"},
		"--graph", filepath.Join(root, "configs", "graphs", "sf_producer_v2.yaml"))
	if r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	qpath := filepath.Join(dir, "outputs", "queues", "sf.sqlite3")
	sub := subscribe(t, b.URL("tcp"), "schnitzel/#")

	f := startMQTTGraph(t, dir, filepath.Join(root, "configs", "graphs", "mqtt_forward_v2.yaml"),
		[]string{"MQTT_URL=" + b.URL("tcp")})
	poll.Until(t, 30*time.Second, "the first deliveries", func() bool { return sub.distinct() > 0 })
	b.Stop() // mid-stream: the forwarder has rows leased and publishes in flight
	poll.Until(t, 20*time.Second, "the sink to notice", func() bool { return f.metric(t, "publish", "connected") == 0 })
	during := sub.distinct()
	b.Restart()
	poll.Until(t, 90*time.Second, "every packet at the subscriber", func() bool { return sub.distinct() == count })
	poll.Until(t, 30*time.Second, "the queue to drain", func() bool { return queueStats(t, qpath).Rows == 0 })
	if v := f.metric(t, "publish", "reconnects_total"); v < 1 {
		t.Errorf("reconnects_total %v, want >= 1", v)
	}
	if err := f.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitWithin(t, f.p, 20*time.Second, f.errb); code != 0 {
		t.Errorf("forwarder exit %d after SIGTERM\n%s", code, f.errb.String())
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, bad := range sub.bad {
		t.Errorf("bad message %q", bad)
	}
	for seq := int64(0); seq < count; seq++ {
		if sub.seqs[seq] == 0 {
			t.Errorf("seq %d never delivered", seq)
		}
	}
	if !strings.Contains(f.errb.String(), "mqtt: connection lost") || !strings.Contains(f.errb.String(), "mqtt: reconnected") {
		t.Errorf("disconnect and reconnect not logged:\n%s", f.errb.String())
	}
	t.Logf("%d packets; %d delivered before the outage; %d messages received (%d duplicates)", count, during, sub.total, sub.total-count)
}

// TestMQTTSourceRedeliversAfterKill: MqttSource -> SqliteQueueSink with a
// persistent session. The queue is full (max_rows 1, overflow block), so
// the received message cannot be committed; schnitzel is killed with
// SIGKILL, and the next run (an unbounded queue) receives the message
// again from the broker and commits it.
func TestMQTTSourceRedeliversAfterKill(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.mqtt:MqttSource")
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()
	if r := run(t, dir, []string{"SF_COUNT=1", "SF_INTERVAL_SEC=0"}, "--graph", filepath.Join(root, "configs", "graphs", "sf_producer_v2.yaml")); r.code != 0 {
		t.Fatalf("producer exit %d\n%s", r.code, r.stderr)
	}
	qpath := filepath.Join(dir, "outputs", "queues", "sf.sqlite3")
	graph := `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.mqtt:MqttSource
    config: {url: "` + b.URL("tcp") + `", topic: "in/#", qos: 1, clean_start: false, client_id: e2e-source}
  - id: queue
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config:
      path: outputs/queues/sf.sqlite3
      max_rows: ${oc.env:MAX_ROWS,0}
      overflow: block
edges:
  - {from: src, to: queue}
`
	if err := os.WriteFile(filepath.Join(dir, "in.yaml"), []byte(graph), 0o644); err != nil {
		t.Fatal(err)
	}
	first := startMQTTGraph(t, dir, "in.yaml", []string{"MAX_ROWS=1"})
	poll.Until(t, 20*time.Second, "the source to subscribe", func() bool { return first.metric(t, "src", "connected") == 1 })

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL("tcp")).SetClientID("e2e-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	if tok := pub.Publish("in/cam", 1, false, `{"seq": 99}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	poll.Until(t, 20*time.Second, "the source to receive", func() bool { return first.metric(t, "src", "received_total") == 1 })
	if err := first.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.p.exited
	if st := queueStats(t, qpath); st.Rows != 1 {
		t.Fatalf("queue holds %d rows after the kill, want 1 (the message must not be committed yet)", st.Rows)
	}

	second := startMQTTGraph(t, dir, "in.yaml", nil)
	poll.Until(t, 30*time.Second, "the redelivered message in the queue", func() bool { return queueStats(t, qpath).Rows == 2 })
	if err := second.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitWithin(t, second.p, 20*time.Second, second.errb); code != 0 {
		t.Errorf("exit %d\n%s", code, second.errb.String())
	}
	if !strings.Contains(second.out.String(), `"node.src.received_total":1,`) {
		t.Errorf("the second run did not receive the message once: %s", second.out.String())
	}
}
