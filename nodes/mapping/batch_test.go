package mapping_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// seqPackets are n packets with payload {"n": i} from source_id src(i).
func seqPackets(n int, src func(i int) string) []*packet.Packet {
	ps := make([]*packet.Packet, n)
	for i := range ps {
		ps[i] = packet.New("event", src(i), packet.MapOf("n", int64(i)), fmt.Sprintf("2026-02-14T00:00:%02d+00:00", i%60), nil)
	}
	return ps
}

func one(int) string { return "cam01" }

func TestBatch(t *testing.T) {
	cases := []struct {
		name string
		cfg  *packet.Map
		in   []*packet.Packet
		want []string // JSON of each batch's payload, in order
		src  []string // each batch's source_id
	}{
		{"count with rest flushed at end", packet.MapOf("count", int64(2)), seqPackets(5, one),
			[]string{`{"items":[{"n":0},{"n":1}],"count":2}`, `{"items":[{"n":2},{"n":3}],"count":2}`, `{"items":[{"n":4}],"count":1}`},
			[]string{"cam01", "cam01", "cam01"}},
		// each packet's JSON is 160 bytes ({"n": 0}..{"n": 9}), so 330 bytes hold two
		{"max_bytes", packet.MapOf("count", int64(100), "max_bytes", int64(330)), seqPackets(5, one),
			[]string{`{"items":[{"n":0},{"n":1}],"count":2}`, `{"items":[{"n":2},{"n":3}],"count":2}`, `{"items":[{"n":4}],"count":1}`},
			[]string{"cam01", "cam01", "cam01"}},
		{"max_bytes smaller than a packet", packet.MapOf("max_bytes", int64(10)), seqPackets(2, one),
			[]string{`{"items":[{"n":0}],"count":1}`, `{"items":[{"n":1}],"count":1}`}, []string{"cam01", "cam01"}},
		{"by key", packet.MapOf("count", int64(2), "key", "source_id"), seqPackets(5, func(i int) string { return []string{"a", "b"}[i%2] }),
			[]string{`{"items":[{"n":0},{"n":2}],"count":2}`, `{"items":[{"n":1},{"n":3}],"count":2}`, `{"items":[{"n":4}],"count":1}`},
			[]string{"a", "b", "a"}},
		{"max_keys evicts the oldest", packet.MapOf("count", int64(10), "key", "payload.n % 3", "max_keys", int64(2)), seqPackets(4, one),
			[]string{`{"items":[{"n":0}],"count":1}`, `{"items":[{"n":1}],"count":1}`, `{"items":[{"n":2}],"count":1}`, `{"items":[{"n":3}],"count":1}`},
			[]string{"0", "1", "2", "0"}},
		{"include_meta", packet.MapOf("count", int64(1), "include_meta", true, "kind", "bundle"), seqPackets(1, one),
			[]string{`{"packets":[{"packet_id":"ID","ts":"2026-02-14T00:00:00+00:00","kind":"event","source_id":"cam01","payload":{"n":0},"meta":{}}],"count":1}`},
			[]string{"cam01"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := plugintest.Build(t, reg(), mod+"Batch", "node", c.cfg)
			defer plugintest.Close(t, n)
			got := plugintest.Process(t, n, c.in...)
			if len(got) != len(c.want) {
				t.Fatalf("got %d batches, want %d: %v", len(got), len(c.want), got)
			}
			for i, p := range got {
				j := json(t, p.Payload)
				if c.name == "include_meta" {
					j = replaceID(j, c.in[0].ID)
				}
				if j != c.want[i] {
					t.Errorf("batch %d: payload %s, want %s", i, j, c.want[i])
				}
				if p.SourceID != c.src[i] {
					t.Errorf("batch %d: source_id %q, want %q", i, p.SourceID, c.src[i])
				}
				wantKind := "batch"
				if k, ok := c.cfg.Get("kind"); ok {
					wantKind = k.(string)
				}
				if p.Kind != wantKind {
					t.Errorf("batch %d: kind %q, want %q", i, p.Kind, wantKind)
				}
			}
			if got[0].TS != c.in[0].TS {
				t.Errorf("ts %q, want the first packet's %q", got[0].TS, c.in[0].TS)
			}
			var batched int64
			for _, m := range n.(plugin.Metrics).Metrics() {
				if m.Name == "batched_total" {
					batched = m.Value
				}
			}
			if batched != int64(len(c.in)) {
				t.Errorf("batched_total %d, want %d", batched, len(c.in))
			}
		})
	}
}

func replaceID(s, id string) string {
	for i := 0; i+len(id) <= len(s); i++ {
		if s[i:i+len(id)] == id {
			return s[:i] + "ID" + s[i+len(id):]
		}
	}
	return s
}

func metric(t *testing.T, n any, name string) int64 {
	t.Helper()
	for _, m := range n.(plugin.Metrics).Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestBatchEvictionsCounted(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Batch", "node", packet.MapOf("key", "payload.n", "max_keys", int64(3)))
	defer plugintest.Close(t, n)
	if got := plugintest.Process(t, n, seqPackets(5, one)...); len(got) != 5 {
		t.Fatalf("got %d batches, want 5", len(got))
	}
	if e := metric(t, n, "evictions_total"); e != 2 {
		t.Errorf("evictions_total %d, want 2", e)
	}
}

// TestBatchPeriod: a partial batch is emitted by its timer, without more
// input and before any flush.
func TestBatchPeriod(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Batch", "node", packet.MapOf("count", int64(10), "period_sec", 0.05))
	defer plugintest.Close(t, n)
	c := &plugintest.Collector{}
	start := time.Now()
	for _, p := range seqPackets(3, one) {
		if err := n.(plugin.Processor).Process(context.Background(), p, c); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 5*time.Second, "the period's batch", func() bool { return len(c.Packets()) == 1 })
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("batch emitted after %v, before period_sec", d)
	}
	if j := json(t, c.Packets()[0].Payload); j != `{"items":[{"n":0},{"n":1},{"n":2}],"count":3}` {
		t.Errorf("payload %s", j)
	}
	if err := n.(plugin.Flusher).Flush(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.Packets()) != 1 {
		t.Errorf("flush emitted %d more", len(c.Packets())-1)
	}
}

// TestBatchAcks: the batch's Ack acknowledges every input, its Nack nacks
// them; a batch still open at Close is nacked.
func TestBatchAcks(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Batch", "node", packet.MapOf("count", int64(2)))
	var acked, nacked atomic.Int64
	in := seqPackets(5, one)
	for _, p := range in {
		p.Ack = func() { acked.Add(1) }
		p.Nack = func(error) { nacked.Add(1) }
	}
	c := &plugintest.Collector{}
	for _, p := range in {
		if err := n.(plugin.Processor).Process(context.Background(), p, c); err != nil {
			t.Fatal(err)
		}
	}
	got := c.Packets()
	if len(got) != 2 {
		t.Fatalf("got %d batches, want 2", len(got))
	}
	got[0].Ack()
	if acked.Load() != 2 || nacked.Load() != 0 {
		t.Errorf("after Ack: %d acked, %d nacked; want 2, 0", acked.Load(), nacked.Load())
	}
	got[1].Nack(errors.New("sink failed"))
	if acked.Load() != 2 || nacked.Load() != 2 {
		t.Errorf("after Nack: %d acked, %d nacked; want 2, 2", acked.Load(), nacked.Load())
	}
	plugintest.Close(t, n) // the fifth packet's batch was never flushed
	if nacked.Load() != 3 {
		t.Errorf("after Close: %d nacked, want 3", nacked.Load())
	}
}

func TestBatchConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  *packet.Map
		want string
	}{
		{packet.MapOf("count", int64(0)), "config.count"},
		{packet.MapOf("max_bytes", int64(-1)), "config.max_bytes"},
		{packet.MapOf("period_sec", -1.0), "config.period_sec"},
		{packet.MapOf("key", "payload.("), "config.key"},
		{packet.MapOf("max_keys", int64(0)), "config.max_keys"},
	} {
		_, err := plugintest.TryBuild(reg(), mod+"Batch", "node", c.cfg)
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want one naming %s", c.cfg, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
