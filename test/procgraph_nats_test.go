//go:build !windows

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/packet"
)

const (
	pgNatsSpec = `version: 1
processes:
  - {id: publish, graph: publish.yaml}
  - {id: consume, graph: consume.yaml}
channels:
  - {id: q_main, transport: nats, subject: pg.events, stream: PG}
links:
  - {producer: publish, consumer: consume, channel: q_main}
`
	pgNatsPublish = `version: 2
nodes:
  - {id: src, kind: source, plugin: "schnitzel_stream.nodes.dev:TickerSource", config: {count: %d, interval_sec: 0.002, kind: tick}}
  - id: pub
    kind: sink
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config: {url: "${oc.env:NATS_URL}", subject: pg.events, stream: PG, create_stream: true}
edges:
  - {from: src, to: pub}
`
	// follow: false: the source ends when it has read everything, and run
	// starts it again while the producer runs (like a draining queue).
	pgNatsConsume = `version: 2
nodes:
  - id: sub
    kind: source
    plugin: schnitzel_stream.nodes.nats:JetStreamSource
    config: {url: "${oc.env:NATS_URL}", stream: PG, durable: q_main, filter_subject: pg.events, follow: false, idle_wait_sec: 0.1, batch: 50}
  - {id: out, kind: sink, plugin: "schnitzel_stream.nodes.dev:PrintSink", config: {prefix: "GOT "}}
edges:
  - {from: sub, to: out}
`
)

// TestProcgraphRunNATSChannel: procgraph run on a spec whose channel is a
// JetStream subject. The stream does not exist before the run (run creates
// it before the consumer starts); every packet the producer publishes
// reaches the consumer's sink exactly once, and a second run delivers only
// the second run's packets (the durable keeps its position).
func TestProcgraphRunNATSChannel(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSink", "schnitzel_stream.nodes.nats:JetStreamSource")
	srv := natstest.Start(t, natstest.Options{})
	dir := t.TempDir()
	const n = 300
	for name, body := range map[string]string{
		"pg.yaml": pgNatsSpec, "publish.yaml": fmt.Sprintf(pgNatsPublish, n), "consume.yaml": pgNatsConsume,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"NATS_URL=" + srv.URL()}

	r := run(t, dir, env, "procgraph", "validate", "--spec", "pg.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "channel[q_main]="+srv.URL()+" stream=PG subject=pg.events") {
		t.Fatalf("validate: code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	seen := map[string]bool{}
	for round := 1; round <= 2; round++ {
		r := run(t, dir, env, "procgraph", "run", "--spec", "pg.yaml", "--rerun-delay", "50ms")
		if r.code != 0 {
			t.Fatalf("round %d: code %d\n%s\n%s", round, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "process[publish] status=ok runs=1") || !strings.Contains(r.stdout, "process[consume] status=ok") {
			t.Fatalf("round %d: results:\n%s", round, r.stdout)
		}
		seqs := map[int64]int{}
		got := 0
		for _, l := range lines(r.stdout) {
			rest, ok := strings.CutPrefix(l, "GOT ")
			if !ok {
				continue
			}
			v, err := packet.DecodeJSON([]byte(rest))
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			m := v.(*packet.Map)
			id, _ := m.GetString("packet_id")
			if seen[id] {
				t.Fatalf("round %d: packet %s arrived twice", round, id)
			}
			seen[id] = true
			pl, _ := m.Get("payload")
			seq, _ := pl.(*packet.Map).Get("seq")
			s, _ := seq.(int64)
			seqs[s]++
			got++
		}
		if got != n {
			t.Fatalf("round %d: consumer printed %d packets, want %d\nstderr:\n%s", round, got, n, r.stderr)
		}
		for i := range int64(n) {
			if seqs[i] != 1 {
				t.Fatalf("round %d: tick %d arrived %d times", round, i, seqs[i])
			}
		}
	}

	// The stream run created holds both rounds; the durable has acked all.
	_, js := natstest.Client(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "PG")
	if err != nil {
		t.Fatal(err)
	}
	if msgs := st.CachedInfo().State.Msgs; msgs != 2*n {
		t.Fatalf("stream PG holds %d messages, want %d", msgs, 2*n)
	}
	c, err := js.Consumer(ctx, "PG", "q_main")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Fatalf("durable q_main: %d pending, %d unacked", info.NumPending, info.NumAckPending)
	}
}

// TestProcgraphRunNATSNoServer: with no server at the channel's url, run
// fails before starting any process and names the channel.
func TestProcgraphRunNATSNoServer(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSink")
	dir := t.TempDir()
	for name, body := range map[string]string{
		"pg.yaml": pgNatsSpec, "publish.yaml": fmt.Sprintf(pgNatsPublish, 3), "consume.yaml": pgNatsConsume,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port, err := natstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, []string{fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", port)}, "procgraph", "run", "--spec", "pg.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, `pg.yaml:6: channel "q_main" (stream PG at nats://127.0.0.1:`) || strings.Contains(r.stderr, "process starting") {
		t.Fatalf("code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestProcgraphRunNATSStreamMissing: a producer sink that does not create
// the stream, and no stream: run names the channel and the sink, starts
// nothing.
func TestProcgraphRunNATSStreamMissing(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSink")
	srv := natstest.Start(t, natstest.Options{})
	dir := t.TempDir()
	for name, body := range map[string]string{
		"pg.yaml": pgNatsSpec, "consume.yaml": pgNatsConsume,
		"publish.yaml": strings.Replace(fmt.Sprintf(pgNatsPublish, 3), "create_stream: true", "create_stream: false", 1),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, dir, []string{"NATS_URL=" + srv.URL()}, "procgraph", "run", "--spec", "pg.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, `pg.yaml:6: channel "q_main"`) ||
		!strings.Contains(r.stderr, `stream does not exist, and producer "publish" node "pub" does not create it`) ||
		strings.Contains(r.stderr, "process starting") {
		t.Fatalf("code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
