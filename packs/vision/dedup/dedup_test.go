package dedup

import (
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time  { return c.t }
func (c *clock) add(sec float64) { c.t = c.t.Add(time.Duration(sec * float64(time.Second))) }
func ev(kv ...any) *packet.Map   { return packet.MapOf(kv...) }
func low(track any) *packet.Map {
	return ev("camera_id", "C1", "event_type", "ZI", "track_id", track, "severity", "LOW")
}
func sev(track any, s any) *packet.Map {
	return ev("camera_id", "C1", "event_type", "ZI", "track_id", track, "severity", s)
}

func TestKey(t *testing.T) {
	cases := []struct {
		p   *packet.Map
		key string
		ok  bool
	}{
		{low(int64(1)), "C1:ZI:1", true},
		{low(nil), "C1:ZI:na", true},
		{ev("camera_id", "C1", "event_type", "ZI"), "C1:ZI:na", true},
		{low(1.5), "C1:ZI:1.5", true},
		{ev("camera_id", "", "event_type", "ZI"), "", false},
		{ev("event_type", "ZI"), "", false},
		{ev("camera_id", "C1", "event_type", nil), "", false},
		{ev("camera_id", int64(0), "event_type", "ZI"), "", false},
	}
	for _, c := range cases {
		k, ok := Key(c.p)
		if k != c.key || ok != c.ok {
			t.Errorf("Key(%s) = %q %v, want %q %v", packet.PyStr(c.p), k, ok, c.key, c.ok)
		}
	}
}

// step is one Allow call after advancing the clock by dt seconds.
type step struct {
	dt   float64
	p    *packet.Map
	want bool
}

func TestAllowSequences(t *testing.T) {
	cases := []struct {
		name     string
		cooldown float64
		prune    int
		steps    []step
	}{
		{"upstream test: cooldown then severity change", 1, 1, []step{
			{0, low(int64(1)), true}, {0, low(int64(1)), false}, {0, sev(int64(1), "HIGH"), true}}},
		{"repeat within cooldown does not refresh the window", 10, 100, []step{
			{0, low(int64(1)), true}, {9, low(int64(1)), false}, {1, low(int64(1)), true}, {9.9, low(int64(1)), false}}},
		{"cooldown boundary: exactly cooldown passes", 10, 100, []step{
			{0, low(int64(1)), true}, {10, low(int64(1)), true}}},
		{"tracks are independent", 10, 100, []step{
			{0, low(int64(1)), true}, {0, low(int64(2)), true}, {0, low(nil), true}, {0, low(nil), false}}},
		{"severity back and forth always passes", 10, 100, []step{
			{0, low(int64(1)), true}, {0, sev(int64(1), "HIGH"), true}, {0, low(int64(1)), true}, {0, low(int64(1)), false}}},
		{"severity change refreshes the window", 10, 100, []step{
			{0, low(int64(1)), true}, {8, sev(int64(1), "HIGH"), true}, {8, sev(int64(1), "HIGH"), false}, {2, sev(int64(1), "HIGH"), true}}},
		{"no severity first: later severity is not a change", 10, 100, []step{
			{0, ev("camera_id", "C1", "event_type", "ZI"), true}, {0, sev(nil, "HIGH"), false}, {10, sev(nil, "HIGH"), true}, {0, sev(nil, "LOW"), true}}},
		{"null severity keeps the stored one", 10, 100, []step{
			{0, low(int64(1)), true}, {10, sev(int64(1), nil), true}, {0, sev(int64(1), "HIGH"), true}}},
		{"string and number severities differ, 1 and 1.0 do not", 10, 100, []step{
			{0, sev(int64(1), "1"), true}, {0, sev(int64(1), int64(1)), true}, {0, sev(int64(1), 1.0), false}}},
		{"events without key always pass", 10, 100, []step{
			{0, ev("event_type", "ZI"), true}, {0, ev("event_type", "ZI"), true}}},
		{"zero cooldown passes everything", 0, 1, []step{
			{0, low(int64(1)), true}, {0, low(int64(1)), true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &clock{t: time.Unix(0, 0)}
			s := New(time.Duration(c.cooldown*float64(time.Second)), c.prune)
			s.Now = clk.now
			for i, st := range c.steps {
				clk.add(st.dt)
				if got := s.Allow(st.p); got != st.want {
					t.Fatalf("step %d (%s): %v, want %v", i, packet.PyStr(st.p), got, st.want)
				}
			}
		})
	}
}

func TestPrune(t *testing.T) {
	clk := &clock{t: time.Unix(0, 0)}
	s := New(10*time.Second, 3)
	s.Now = clk.now
	s.Allow(low(int64(1)))
	s.Allow(low(int64(2)))
	clk.add(11)
	s.Allow(low(int64(3))) // third keyed call: prunes 1 and 2
	if s.Len() != 1 {
		t.Fatalf("after prune %d keys, want 1", s.Len())
	}
	// A pruned key forgets its severity too: LOW again is a new key.
	if !s.Allow(sev(int64(1), "HIGH")) || s.Len() != 2 {
		t.Fatal("pruned key not treated as new")
	}
	// Calls without a key are not counted.
	for i := 0; i < 10; i++ {
		s.Allow(ev("event_type", "ZI"))
	}
	if s.count != 4 {
		t.Fatalf("count %d, want 4", s.count)
	}
}

func TestRealClockIsMonotonic(t *testing.T) {
	s := New(time.Hour, 100)
	if !s.Allow(low(int64(1))) || s.Allow(low(int64(1))) {
		t.Fatal("real clock: second event within an hour passed")
	}
}
