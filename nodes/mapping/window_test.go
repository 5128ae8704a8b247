package mapping_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

var base = time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)

// ev is a packet at base+sec from src with payload {"x": x}.
func ev(sec float64, src string, x int64) *packet.Packet {
	ts := packet.FormatTS(base.Add(time.Duration(sec * float64(time.Second))))
	return packet.New("event", src, packet.MapOf("x", x), ts, nil)
}

// at renders base+sec as a window bound.
func at(sec int) string { return packet.FormatTS(base.Add(time.Duration(sec) * time.Second)) }

// win is the JSON of a window payload without aggregates.
func win(start, end int, key string, count int) string {
	return `{"window_start":"` + at(start) + `","window_end":"` + at(end) + `","key":` + key + `,"count":` + itoa(count)
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestWindow(t *testing.T) {
	stats := packet.MapOf("sum", packet.MapOf("op", "sum", "expr", "payload.x"), "min", packet.MapOf("op", "min", "expr", "payload.x"),
		"max", packet.MapOf("op", "max", "expr", "payload.x"), "avg", packet.MapOf("op", "avg", "expr", "payload.x"),
		"first", packet.MapOf("op", "first", "expr", "payload.x"), "last", packet.MapOf("op", "last", "expr", "payload.x"))
	cases := []struct {
		name    string
		cfg     *packet.Map
		in      []*packet.Packet
		want    []string // JSON of each window's payload, in order
		late    []int64  // x of the packets on late_port
		metrics map[string]int64
	}{
		{"tumbling event time, out of order and late",
			packet.MapOf("size_sec", 10.0, "aggregates", stats),
			[]*packet.Packet{ev(1, "a", 1), ev(5, "a", 2), ev(3, "a", 3), ev(12, "a", 4), ev(4, "a", 5), ev(25, "a", 6)},
			[]string{
				win(0, 10, "null", 3) + `,"avg":2.0,"first":1,"last":3,"max":3,"min":1,"sum":6}`,
				win(10, 20, "null", 1) + `,"avg":4.0,"first":4,"last":4,"max":4,"min":4,"sum":4}`,
				win(20, 30, "null", 1) + `,"avg":6.0,"first":6,"last":6,"max":6,"min":6,"sum":6}`, // flushed at the end
			}, nil, map[string]int64{"late_total": 1, "windowed_total": 5, "windows_total": 3}},
		{"allowed lateness and late_port",
			packet.MapOf("size_sec", 10.0, "allowed_lateness_sec", 5.0, "late_port", "late"),
			[]*packet.Packet{ev(1, "a", 1), ev(12, "a", 2), ev(4, "a", 3), ev(16, "a", 4), ev(2, "a", 5)},
			[]string{win(0, 10, "null", 2) + `}`, win(10, 20, "null", 2) + `}`},
			[]int64{5}, map[string]int64{"late_total": 1}},
		{"sliding windows overlap",
			packet.MapOf("type", "sliding", "size_sec", 10.0, "slide_sec", 5.0, "aggregates", packet.MapOf("xs", packet.MapOf("op", "expr", "expr", "map(items, .x)"))),
			[]*packet.Packet{ev(1, "a", 1), ev(6, "a", 2), ev(11, "a", 3)},
			[]string{win(-5, 5, "null", 1) + `,"xs":[1]}`, win(0, 10, "null", 2) + `,"xs":[1,2]}`,
				win(5, 15, "null", 2) + `,"xs":[2,3]}`, win(10, 20, "null", 1) + `,"xs":[3]}`},
			nil, map[string]int64{"windows_total": 4}},
		{"session gaps per key",
			packet.MapOf("type", "session", "gap_sec", 5.0, "key", "source_id", "aggregates", packet.MapOf("n", packet.MapOf("op", "count"))),
			[]*packet.Packet{ev(0, "a", 1), ev(3, "a", 2), ev(1, "b", 3), ev(20, "a", 4), ev(28, "a", 5)},
			[]string{win(1, 6, `"b"`, 1) + `,"n":1}`, win(0, 8, `"a"`, 2) + `,"n":2}`, win(20, 25, `"a"`, 1) + `,"n":1}`, win(28, 33, `"a"`, 1) + `,"n":1}`},
			nil, nil},
		{"session joined by an out-of-order packet",
			packet.MapOf("type", "session", "gap_sec", 5.0, "allowed_lateness_sec", 100.0, "aggregates", packet.MapOf("sum", packet.MapOf("op", "sum", "expr", "payload.x"), "first", packet.MapOf("op", "first", "expr", "payload.x"))),
			[]*packet.Packet{ev(0, "a", 1), ev(8, "a", 2), ev(4, "a", 3)},
			[]string{win(0, 13, "null", 3) + `,"first":1,"sum":6}`},
			nil, map[string]int64{"open_windows": 0}},
		{"keyed, max_keys evicts the least recently used",
			packet.MapOf("size_sec", 10.0, "key", "source_id", "max_keys", int64(2)),
			[]*packet.Packet{ev(1, "a", 1), ev(2, "b", 2), ev(3, "a", 3), ev(4, "c", 4)},
			[]string{win(0, 10, `"b"`, 1) + `}`, win(0, 10, `"a"`, 2) + `}`, win(0, 10, `"c"`, 1) + `}`},
			nil, map[string]int64{"evictions_total": 1}},
		{"max_items_per_window caps items",
			packet.MapOf("size_sec", 10.0, "max_items_per_window", int64(2), "aggregates", packet.MapOf("xs", packet.MapOf("op", "expr", "expr", "map(items, .x)"),
				"nonnull", packet.MapOf("op", "count", "expr", "payload.y"))),
			[]*packet.Packet{ev(1, "a", 1), ev(2, "a", 2), ev(3, "a", 3)},
			[]string{win(0, 10, "null", 3) + `,"nonnull":0,"xs":[1,2]}`},
			nil, map[string]int64{"items_capped_total": 1}},
		{"ts_expr in Unix seconds",
			packet.MapOf("size_sec", 10.0, "ts_expr", "payload.x"),
			[]*packet.Packet{ev(0, "a", base.Unix()+11), ev(0, "a", base.Unix()+1)},
			// the second is late: the first's time (+11 s) closed [0, 10)
			[]string{win(10, 20, "null", 1) + `}`},
			nil, map[string]int64{"late_total": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := plugintest.Build(t, reg(), mod+"Window", "node", c.cfg)
			defer plugintest.Close(t, n)
			col := &plugintest.Collector{}
			if err := plugintest.ProcessInto(n, col, c.in...); err != nil {
				t.Fatal(err)
			}
			got := col.Packets()
			var js []string
			for _, p := range got {
				js = append(js, json(t, p.Payload))
			}
			if strings.Join(js, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("windows:\n%s\nwant:\n%s", strings.Join(js, "\n"), strings.Join(c.want, "\n"))
			}
			var late []int64
			for _, p := range col.ByPort["late"] {
				v, _ := p.Payload.(*packet.Map).Get("x")
				late = append(late, v.(int64))
			}
			if len(late) != len(c.late) || len(late) > 0 && late[0] != c.late[0] {
				t.Errorf("late_port got x=%v, want %v", late, c.late)
			}
			for k, v := range c.metrics {
				if m := metric(t, n, k); m != v {
					t.Errorf("%s = %d, want %d", k, m, v)
				}
			}
		})
	}
}

func TestWindowOutputEnvelope(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Window", "node", packet.MapOf("size_sec", 10.0, "key", "payload.x % 2", "kind", "stats"))
	defer plugintest.Close(t, n)
	got := plugintest.Process(t, n, ev(1, "cam", 3))
	if len(got) != 1 {
		t.Fatalf("got %d windows", len(got))
	}
	p := got[0]
	if p.Kind != "stats" || p.SourceID != "1" || p.TS != at(10) {
		t.Errorf("kind %q source_id %q ts %q; want stats, 1, %s", p.Kind, p.SourceID, p.TS, at(10))
	}
}

// TestWindowProcessingTime: a processing-time window is emitted by the
// timer when it ends, without more input.
func TestWindowProcessingTime(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Window", "node", packet.MapOf("time", "processing", "size_sec", 0.05))
	defer plugintest.Close(t, n)
	col := &plugintest.Collector{}
	for _, p := range []*packet.Packet{ev(1, "a", 1), ev(2, "a", 2)} {
		if err := n.(plugin.Processor).Process(context.Background(), p, col); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 5*time.Second, "the processing-time window", func() bool { return len(col.Packets()) >= 1 })
	var total int64
	for _, p := range col.Packets() {
		v, _ := p.Payload.(*packet.Map).Get("count")
		total += v.(int64)
	}
	if err := n.(plugin.Flusher).Flush(context.Background(), col); err != nil {
		t.Fatal(err)
	}
	if total == 0 || metric(t, n, "windowed_total") != 2 {
		t.Errorf("timer windows counted %d packets; windowed_total %d", total, metric(t, n, "windowed_total"))
	}
}

func TestWindowAcks(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Window", "node", packet.MapOf("type", "sliding", "size_sec", 10.0, "slide_sec", 5.0))
	acked := 0
	p := ev(6, "a", 1)
	p.Ack = func() { acked++ }
	got := plugintest.Process(t, n, p)
	plugintest.Close(t, n)
	if len(got) != 2 {
		t.Fatalf("got %d windows, want 2", len(got))
	}
	if got[0].Ack != nil {
		t.Error("the first window acknowledges the packet; only the last one it is in may")
	}
	got[1].Ack()
	if acked != 1 {
		t.Errorf("acked %d times, want 1", acked)
	}
}

func TestWindowConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  *packet.Map
		want string
	}{
		{packet.MapOf("type", "hopping"), "config.type"},
		{packet.MapOf("size_sec", 0.0), "config.size_sec"},
		{packet.MapOf("type", "sliding", "size_sec", 5.0, "slide_sec", 10.0), "config.slide_sec"},
		{packet.MapOf("type", "session"), "config.gap_sec"},
		{packet.MapOf("time", "wall"), "config.time"},
		{packet.MapOf("key", "payload.("), "config.key"},
		{packet.MapOf("aggregates", packet.MapOf("count", packet.MapOf("op", "count"))), "config.aggregates.count"},
		{packet.MapOf("aggregates", packet.MapOf("m", packet.MapOf("op", "median", "expr", "payload.x"))), "config.aggregates.m.op"},
		{packet.MapOf("aggregates", packet.MapOf("m", packet.MapOf("op", "expr", "expr", "payload.x"))), "config.aggregates.m.expr"},
	} {
		_, err := plugintest.TryBuild(reg(), mod+"Window", "node", c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want one naming %s", c.cfg, err, c.want)
		}
	}
}

// TestWindowProcessingTimeExprRace: op expr aggregates run when the timer
// closes a window, while Process evaluates the next packet (go test -race).
func TestWindowProcessingTimeExprRace(t *testing.T) {
	n := plugintest.Build(t, reg(), mod+"Window", "node", packet.MapOf("time", "processing", "size_sec", 0.001,
		"aggregates", packet.MapOf("xs", packet.MapOf("op", "expr", "expr", "sum(map(items, .x))"), "s", packet.MapOf("op", "sum", "expr", "payload.x"))))
	defer plugintest.Close(t, n)
	col := &plugintest.Collector{}
	for i := range 2000 {
		if err := n.(plugin.Processor).Process(context.Background(), ev(0, "a", int64(i%7)), col); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.(plugin.Flusher).Flush(context.Background(), col); err != nil {
		t.Fatal(err)
	}
	var xs, s int64
	for _, p := range col.Packets() {
		a, _ := p.Payload.(*packet.Map).Get("xs")
		b, _ := p.Payload.(*packet.Map).Get("s")
		xs += a.(int64)
		s += b.(int64)
	}
	if xs != s || metric(t, n, "windowed_total") != 2000 {
		t.Errorf("expr sums %d, sum aggregates %d; windowed %d", xs, s, metric(t, n, "windowed_total"))
	}
}
