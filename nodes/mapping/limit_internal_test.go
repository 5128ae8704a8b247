package mapping

import (
	"context"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

func build(t *testing.T, name string, cfg *packet.Map) any {
	t.Helper()
	r := plugin.NewRegistry()
	Register(r)
	return plugintest.Build(t, r, mod+name, "node", cfg)
}

// clock is a fake time that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func ev(src string, id any) *packet.Packet {
	return packet.New("event", src, packet.MapOf("id", id), "2026-02-14T00:00:00+00:00", nil)
}

func TestDedupe(t *testing.T) {
	d := build(t, "Dedupe", packet.MapOf("key", "payload.id", "ttl", int64(10), "max_keys", int64(3))).(*dedupe)
	c := &clock{t: time.Unix(1000, 0)}
	d.now = c.now
	steps := []struct {
		advance time.Duration
		id      any
		kept    bool
	}{
		{0, "a", true}, {0, "a", false}, {0, int64(1), true}, {0, "1", true}, // 1 and "1" differ
		{5 * time.Second, "a", false},
		{0, "b", true},                   // 4th key: the oldest (a) is forgotten
		{0, "a", true},                   // so a is new again
		{11 * time.Second, "b", true},    // expired
		{0, packet.MapOf("x", 1), true},  // any value is a key
		{0, packet.MapOf("x", 1), false}, // the same object
	}
	for i, s := range steps {
		c.t = c.t.Add(s.advance)
		out := plugintest.Process(t, d, ev("cam", s.id))
		if (len(out) == 1) != s.kept {
			t.Fatalf("step %d (%v): kept %v, want %v", i, s.id, len(out) == 1, s.kept)
		}
	}
	if m := d.Metrics(); m[0].Value != 7 || m[1].Value != 3 || m[2].Value > 3 {
		t.Errorf("metrics %v", m)
	}
}

func TestRateLimitDrop(t *testing.T) {
	r := build(t, "RateLimit", packet.MapOf("key", "source_id", "rate", int64(2), "burst", int64(2), "on_limit", "drop")).(*rateLimit)
	c := &clock{t: time.Unix(1000, 0)}
	r.now = c.now
	steps := []struct {
		advance time.Duration
		src     string
		pass    bool
	}{
		{0, "a", true}, {0, "a", true}, {0, "a", false}, // burst 2
		{0, "b", true},                       // b has its own bucket
		{499 * time.Millisecond, "a", false}, // 0.998 tokens
		{2 * time.Millisecond, "a", true},    // 1 token after 0.5 s at 2/s
		{10 * time.Second, "a", true},        // refilled to burst, not beyond
		{0, "a", true}, {0, "a", false},
	}
	for i, s := range steps {
		c.t = c.t.Add(s.advance)
		out := plugintest.Process(t, r, ev(s.src, int64(i)))
		if (len(out) == 1) != s.pass {
			t.Fatalf("step %d: passed %v, want %v", i, len(out) == 1, s.pass)
		}
	}
	if m := r.Metrics(); m[0].Value != 6 || m[2].Value != 3 || m[3].Value != 2 {
		t.Errorf("metrics %v", m)
	}
}

func TestRateLimitDelay(t *testing.T) {
	r := build(t, "RateLimit", packet.MapOf("rate", int64(4), "burst", int64(1), "on_limit", "delay")).(*rateLimit)
	c := &clock{t: time.Unix(1000, 0)}
	r.now = c.now
	var waits []time.Duration
	r.wait = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	out := plugintest.Process(t, r, ev("a", 1), ev("a", 2), ev("a", 3))
	if len(out) != 3 {
		t.Fatalf("%d passed", len(out))
	}
	// the second waits one token (0.25 s), the third queues behind it (0.5 s)
	if len(waits) != 2 || waits[0] != 250*time.Millisecond || waits[1] != 500*time.Millisecond {
		t.Errorf("waits %v", waits)
	}
	// a real wait ends when the stop begins, and when ctx ends
	r.wait = nil
	r.Stopping()
	r.Stopping() // twice is fine
	if err := r.sleep(context.Background(), time.Hour); err != nil {
		t.Errorf("sleep after Stopping: %v", err)
	}
	r2 := build(t, "RateLimit", packet.MapOf("rate", int64(1), "burst", int64(1), "on_limit", "delay")).(*rateLimit)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r2.sleep(ctx, time.Hour); err == nil {
		t.Errorf("sleep with a cancelled ctx returned nil")
	}
}

func TestRateLimitMaxKeys(t *testing.T) {
	r := build(t, "RateLimit", packet.MapOf("key", "source_id", "rate", int64(1), "burst", int64(1), "max_keys", int64(2))).(*rateLimit)
	c := &clock{t: time.Unix(1000, 0)}
	r.now = c.now
	for _, s := range []string{"a", "b", "c", "d"} {
		plugintest.Process(t, r, ev(s, 1))
	}
	if len(r.buckets) > 2 {
		t.Errorf("%d buckets, max 2", len(r.buckets))
	}
}
