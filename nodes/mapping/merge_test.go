package mapping_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

type portIn struct {
	port string
	p    *packet.Packet
}

func TestMerge(t *testing.T) {
	o := func(id int64) *packet.Packet { return packet.New("order", "shop", packet.MapOf("id", id), "", nil) }
	cases := []struct {
		name    string
		cfg     *packet.Map
		in      []portIn
		want    []string
		metrics map[string]int64
	}{
		{"union passes everything", packet.MapOf(), []portIn{{"", o(1)}, {"x", o(2)}},
			[]string{`{"id":1}`, `{"id":2}`}, map[string]int64{"joined_total": 2}},
		{"join by key", packet.MapOf("ports", []any{"a", "b"}, "key", "payload.id"),
			[]portIn{{"a", o(1)}, {"a", o(2)}, {"b", o(2)}, {"b", o(1)}, {"a", o(3)}},
			[]string{`{"a":{"id":2},"b":{"id":2}}`, `{"a":{"id":1},"b":{"id":1}}`},
			map[string]int64{"joined_total": 2, "expired_total": 1, "pending": 0}},
		{"replaced and partial emitted at the end", packet.MapOf("ports", []any{"a", "b"}, "key", "payload.id", "on_timeout", "emit"),
			[]portIn{{"a", o(1)}, {"a", o(1)}},
			[]string{`{"a":{"id":1},"b":null}`}, map[string]int64{"replaced_total": 1, "expired_total": 1}},
		{"max_keys expires the oldest", packet.MapOf("ports", []any{"a", "b"}, "key", "payload.id", "max_keys", int64(1)),
			[]portIn{{"a", o(1)}, {"b", o(1)}, {"a", o(2)}, {"b", o(3)}},
			[]string{`{"a":{"id":1},"b":{"id":1}}`}, map[string]int64{"expired_total": 2, "joined_total": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := plugintest.Build(t, reg(), mod+"Merge", "node", c.cfg)
			col := &plugintest.Collector{}
			for _, x := range c.in {
				if err := n.(plugin.PortProcessor).ProcessPort(context.Background(), x.port, x.p, col); err != nil {
					t.Fatal(err)
				}
			}
			if err := n.(plugin.Flusher).Flush(context.Background(), col); err != nil {
				t.Fatal(err)
			}
			var js []string
			for _, p := range col.Packets() {
				js = append(js, json(t, p.Payload))
			}
			if strings.Join(js, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(js, "\n"), strings.Join(c.want, "\n"))
			}
			for k, v := range c.metrics {
				if m := metric(t, n, k); m != v {
					t.Errorf("%s = %d, want %d", k, m, v)
				}
			}
		})
	}
}

func TestMergeUnknownPortAndAcks(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Merge", "node", packet.MapOf("ports", []any{"a", "b"}, "key", "payload.id"))
	col := &plugintest.Collector{}
	p := packet.New("order", "shop", packet.MapOf("id", int64(1)), "", nil)
	if err := n.(plugin.PortProcessor).ProcessPort(context.Background(), "c", p, col); err == nil || !strings.Contains(err.Error(), `port "c"`) {
		t.Errorf("unknown port: err %v", err)
	}
	acked := 0
	for _, port := range []string{"a", "b"} {
		q := p.Copy()
		q.Ack = func() { acked++ }
		if err := n.(plugin.PortProcessor).ProcessPort(context.Background(), port, q, col); err != nil {
			t.Fatal(err)
		}
	}
	got := col.Packets()
	if len(got) != 1 || got[0].SourceID != "\x001"[1:] {
		t.Fatalf("got %v", got)
	}
	got[0].Ack()
	if acked != 2 {
		t.Errorf("acked %d parts, want 2", acked)
	}
}

// TestWindowExampleGraph runs configs/graphs/window_v2.yaml: Merge joins,
// Window sums per site, Batch bundles the two windows' results.
func TestWindowExampleGraph(t *testing.T) {
	src, err := os.ReadFile("../../configs/graphs/window_v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := plugintest.RunGraph(t, string(src), graphReg())
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 batches, got %d lines:\n%s", len(lines), r.Stdout)
	}
	for _, want := range []string{
		`"key": "a", "count": 2, "orders": 2, "revenue": 15.5, "unpaid": 0`,
		`"key": "b", "count": 1, "orders": 1, "revenue": 0, "unpaid": 1`,
		`"key": "a", "count": 1, "orders": 1, "revenue": 1, "unpaid": 0`,
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %s:\n%s", want, r.Stdout)
		}
	}
}
