package execnodes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// misbehave builds a ProcessNode running testdata/misbehave.py with extra
// config keys, started; it counts its starts in the returned file.
func misbehave(t *testing.T, kv ...any) (*node, string) {
	t.Helper()
	py := pythonOrSkip(t)
	starts := filepath.Join(t.TempDir(), "starts")
	pc := cfgMap("starts", starts)
	cfg := cfgMap("command", list(py, abs(t, "testdata/misbehave.py")), "config", pc, "backoff_sec", 0.01, "backoff_max_sec", 0.05)
	for i := 0; i < len(kv); i += 2 {
		if k := kv[i].(string); strings.HasPrefix(k, "config.") {
			pc.Set(strings.TrimPrefix(k, "config."), kv[i+1])
		} else {
			cfg.Set(k, kv[i+1])
		}
	}
	n := plugintest.Build(t, registry(), NodeName, "node", cfg).(*node)
	plugintest.Start(t, n)
	t.Cleanup(func() { plugintest.Close(t, n) })
	return n, starts
}

func countStarts(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "start\n")
}

func metric(n *node, name string) int64 {
	for _, m := range n.Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	return -1
}

// Every way a plugin can fail one packet: the packet fails with the
// reason (dropped: a PacketError), the plugin is restarted when its
// framing or process is lost, and the next packet goes through.
func TestPacketFailures(t *testing.T) {
	cases := []struct {
		do, want        string
		extra           []any
		restart         bool
		timeout, broken int64
	}{
		{do: "raise", want: "ValueError: asked to raise"},
		{do: "crash", want: "Traceback: crashing on purpose", restart: true},
		{do: "hang", want: "no answer within timeout_sec", extra: []any{"timeout_sec", 0.5}, restart: true, timeout: 1},
		{do: "garbage", want: `not a JSON frame`, restart: true, broken: 1},
		{do: "huge", want: "a line longer than 1048576 bytes", extra: []any{"max_frame_bytes", int64(1 << 20)}, restart: true, broken: 1},
		{do: "wrongid", want: "unexpected frame", restart: true, broken: 1},
	}
	for _, tc := range cases {
		t.Run(tc.do, func(t *testing.T) {
			n, starts := misbehave(t, tc.extra...)
			c := &plugintest.Collector{}
			err := n.Process(context.Background(), payload("do", tc.do), c)
			var pe *plugin.PacketError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a PacketError (packet dropped)", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `node "n"`) {
				t.Fatalf("err = %v, want it to name the node and say %q", err, tc.want)
			}
			out := plugintest.Process(t, n, payload("do", "echo", "k", "v"))
			if len(out) != 1 {
				t.Fatalf("after %s: %d packets, want the echo", tc.do, len(out))
			}
			wantStarts, wantRestarts := 1, int64(0)
			if tc.restart {
				wantStarts, wantRestarts = 2, 1
			}
			if got := countStarts(t, starts); got != wantStarts {
				t.Errorf("starts = %d, want %d", got, wantStarts)
			}
			for name, want := range map[string]int64{"restarts_total": wantRestarts, "packets_failed_total": 1, "timeouts_total": tc.timeout, "protocol_errors_total": tc.broken} {
				if got := metric(n, name); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

func TestOnErrorEndsTheRun(t *testing.T) {
	n, _ := misbehave(t, "on_error", "error")
	err := n.Process(context.Background(), payload("do", "raise"), &plugintest.Collector{})
	var pe *plugin.PacketError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "asked to raise") {
		t.Fatalf("err = %v, want a run-ending error with the plugin's message", err)
	}
}

// A plugin that cannot come back: after max_restarts failed restarts the
// node's error ends the run, naming the last reason.
func TestGivesUpAfterMaxRestarts(t *testing.T) {
	n, starts := misbehave(t, "max_restarts", int64(2), "config.refuse_restart", true)
	_ = n.Process(context.Background(), payload("do", "crash"), &plugintest.Collector{})
	err := n.Process(context.Background(), payload("do", "echo"), &plugintest.Collector{})
	var pe *plugin.PacketError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a run-ending error", err)
	}
	for _, want := range []string{"gave up after 2 restart(s)", "refusing to restart"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if got := countStarts(t, starts); got != 1 {
		t.Errorf("starts = %d, want 1 (every restart refused)", got)
	}
	if got := metric(n, "restarts_total"); got != 2 {
		t.Errorf("restarts_total = %d, want 2", got)
	}
}

func TestStartFailures(t *testing.T) {
	py := pythonOrSkip(t)
	script := abs(t, "testdata/misbehave.py")
	cases := []struct {
		name string
		cfg  *packet.Map
		want string
	}{
		{"refused", cfgMap("config", cfgMap("refuse", true)), "refused to start: refusing: bad config"},
		{"protocol", cfgMap("env", cfgMap("MISBEHAVE_PROTOCOL", "2")), "protocol 2 is not supported"},
		{"slow hello", cfgMap("env", cfgMap("MISBEHAVE_SLOW_HELLO", "30"), "start_timeout_sec", 0.3), `no "hello" frame within start_timeout_sec`},
		{"missing program", cfgMap("command", "./no-such-plugin --x"), "no-such-plugin"},
		{"not a plugin", cfgMap("command", list(py, "-c", "print('hi')")), `waiting for "hello": not a JSON frame`},
		{"exits", cfgMap("command", list(py, "-c", "import sys; sys.exit(4)")), "exit status 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfgMap("command", list(py, script))
			for _, e := range tc.cfg.Entries() {
				cfg.Set(e.Key, e.Value)
			}
			n := plugintest.Build(t, registry(), NodeName, "node", cfg).(*node)
			err := n.Start(context.Background())
			plugintest.Close(t, n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start: %v, want %q", err, tc.want)
			}
		})
	}
}

// What cannot cross the protocol fails its packet before anything is
// written: in-process values and frames over max_frame_bytes.
func TestUnportablePackets(t *testing.T) {
	n, starts := misbehave(t, "max_frame_bytes", int64(4096))
	for _, tc := range []struct {
		p    *packet.Packet
		want string
	}{
		{packet.New("bytes", "t", []byte("raw"), "", nil), "by reference only"},
		{payload("big", strings.Repeat("x", 5000)), "over max_frame_bytes 4096"},
	} {
		err := n.Process(context.Background(), tc.p, &plugintest.Collector{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	if got := len(plugintest.Process(t, n, payload("do", "echo"))); got != 1 || countStarts(t, starts) != 1 {
		t.Errorf("the plugin should neither see nor restart for refused packets (echo %d, starts %d)", got, countStarts(t, starts))
	}
}

func TestConfigErrors(t *testing.T) {
	e, _ := registry().Lookup(NodeName)
	for _, tc := range []struct {
		cfg  *packet.Map
		want string
	}{
		{cfgMap(), "command"},
		{cfgMap("command", ""), "command must not be empty"},
		{cfgMap("command", "a 'b"), "command"},
		{cfgMap("command", []any{"a", int64(1)}), "command[1] must be a string"},
		{cfgMap("command", "x", "timeout_sec", int64(0)), "timeout_sec must be > 0"},
		{cfgMap("command", "x", "on_error", "retry"), "on_error"},
		{cfgMap("command", "x", "env", cfgMap("A=B", "c")), "not a variable name"},
	} {
		_, _, errs := e.Decode(tc.cfg)
		var msgs []string
		for _, fe := range errs {
			msgs = append(msgs, fe.Error())
		}
		if got := strings.Join(msgs, "; "); !strings.Contains(got, tc.want) {
			t.Errorf("%v: errors %q, want %q", tc.cfg, got, tc.want)
		}
	}
}
