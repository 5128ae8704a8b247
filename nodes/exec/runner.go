package execnodes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/childproc"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// settings is a resolved Config: what the runner needs.
type settings struct {
	argv         []string
	env          []string // KEY=VALUE on top of ours
	dir          string
	name         string        // for messages; "" = the command line
	timeout      time.Duration // per packet
	startTimeout time.Duration // hello, then ready
	maxRestarts  int           // in a row without a good answer; <0 unlimited
	backoff      time.Duration
	backoffMax   time.Duration
	dropOnError  bool
	maxFrame     int
	config       *packet.Map // sent in the config frame
}

// runner owns one plugin process at a time and speaks the protocol with it.
// Process and Run calls are serialised by the runtime; mu guards cur
// against Close from another goroutine.
type runner struct {
	s      settings
	nodeID string
	name   string // command line for messages
	log    *slog.Logger
	stderr plugin.RateLog
	warn   plugin.RateLog
	enc    *encoder
	buf    []byte

	mu      sync.Mutex
	cur     *child
	closed  bool
	seq     int64
	inARow  int   // restarts since the last good answer
	lastErr error // why the last child went

	// The metrics (metricSpecs); node and source report them.
	*plugin.Counters
	failed, restarts, timeouts, garbage *plugin.Counter
}

func newRunner(s settings, env plugin.Env) *runner {
	cs := env.Counters()
	return &runner{
		s: s, nodeID: env.NodeID, name: cmp.Or(s.name, childproc.Name(s.argv)), log: env.Logger,
		stderr: plugin.RateLog{Burst: 50}, warn: plugin.RateLog{Burst: 5}, enc: newEncoder(),
		Counters: cs, failed: cs.Get("packets_failed_total"), restarts: cs.Get("restarts_total"),
		timeouts: cs.Get("timeouts_total"), garbage: cs.Get("protocol_errors_total"),
	}
}

// errf names the node and the plugin command.
func (r *runner) errf(format string, args ...any) error {
	return fmt.Errorf("node %q: plugin %s: %s", r.nodeID, r.name, fmt.Sprintf(format, args...))
}

// start launches a child and does the handshake: hello within
// start_timeout, then our config, then ready (or the plugin's error).
func (r *runner) start(ctx context.Context) (*child, error) {
	c, err := spawn(r.s.argv, r.s.env, r.s.dir, r.s.maxFrame, r.log, &r.stderr)
	if err != nil {
		return nil, r.errf("%v", err)
	}
	timer := time.NewTimer(r.s.startTimeout)
	defer timer.Stop()
	it, err := r.expect(ctx, c, timer, "hello")
	if err != nil {
		c.kill()
		return nil, err
	}
	if v, _ := it.f.M.Get("protocol"); v != int64(ProtocolVersion) {
		c.kill()
		return nil, r.errf("hello: protocol %v is not supported (this build speaks protocol %d)", packet.PyStr(v), ProtocolVersion)
	}
	timer.Reset(r.s.startTimeout) // a second period for loading, after hello
	r.buf, err = r.enc.configFrame(r.buf[:0], r.s.config, r.nodeID)
	if err != nil {
		c.kill()
		return nil, r.errf("config: %v", err)
	}
	if err := c.write(ctx, r.buf, time.Now().Add(r.s.startTimeout)); err != nil {
		c.kill()
		return nil, r.errf("sending config: %v; %s", err, c.exitReason())
	}
	if _, err := r.expect(ctx, c, timer, "ready"); err != nil {
		c.kill()
		return nil, err
	}
	r.log.Debug("plugin started", "plugin", r.name, "pid", c.cmd.Process.Pid)
	return c, nil
}

// expect waits for a frame of type want during start-up; an error frame
// is the plugin's refusal.
func (r *runner) expect(ctx context.Context, c *child, timer *time.Timer, want string) (frameItem, error) {
	it, ok, err := c.next(ctx, timer.C)
	switch {
	case errors.Is(err, errTimeout):
		return it, r.errf("no %q frame within start_timeout_sec %s", want, r.s.startTimeout)
	case err != nil:
		return it, err
	case !ok:
		return it, r.errf("no %q frame: %s", want, c.exitReason())
	case it.err != nil:
		return it, r.errf("waiting for %q: %v", want, it.err)
	case it.f.Type == "error":
		msg, _ := it.f.M.GetString("message")
		return it, r.errf("refused to start: %s", msg)
	case it.f.Type != want:
		return it, r.errf("expected a %q frame, got %q", want, it.f.Type)
	}
	return it, nil
}

// ensure returns a live child, restarting after the backoff when the last
// one went; a spent max_restarts is an error that ends the run.
func (r *runner) ensure(ctx context.Context) (*child, error) {
	r.mu.Lock()
	c, closed := r.cur, r.closed
	r.mu.Unlock()
	if closed {
		return nil, r.errf("closed")
	}
	if c != nil && !c.dead() {
		return c, nil
	}
	for {
		if r.s.maxRestarts >= 0 && r.inARow >= r.s.maxRestarts {
			return nil, r.errf("gave up after %d restart(s) in a row without a good answer (max_restarts %d); last: %v", r.inARow, r.s.maxRestarts, r.lastErr)
		}
		r.inARow++
		d := plugin.Backoff(r.inARow, r.s.backoff, r.s.backoffMax, rand.Float64())
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		r.restarts.Add(1)
		r.warn.Warn(r.log, "restarting plugin", "plugin", r.name, "attempt", r.inARow, "after", d, "reason", errText(r.lastErr))
		nc, err := r.start(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r.lastErr = err
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			nc.kill()
			return nil, r.errf("closed")
		}
		r.cur = nc
		r.mu.Unlock()
		return nc, nil
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// lose kills c (its framing is lost or it hangs) and remembers why; the
// next packet restarts it.
func (r *runner) lose(c *child, why error) {
	c.kill()
	r.lastErr = why
}

// fail is the outcome of a packet the plugin did not handle: counted, and
// dropped (degraded run) or, with on_error: error, the end of the run.
func (r *runner) fail(err error) error {
	r.failed.Add(1)
	if r.s.dropOnError {
		return plugin.DropPacket(err) // the runtime logs it, rate-limited
	}
	return err
}

// process sends p and returns the packets the plugin answered.
func (r *runner) process(ctx context.Context, p *packet.Packet) ([]*packet.Packet, error) {
	c, err := r.ensure(ctx)
	if err != nil {
		return nil, err
	}
	r.seq++
	id := r.seq
	b, err := r.enc.packetFrame(r.buf[:0], id, p)
	if err != nil {
		return nil, r.fail(r.errf("packet %s: %v", p.ID, err))
	}
	r.buf = b
	if len(b)-1 > r.s.maxFrame {
		return nil, r.fail(r.errf("packet %s: %d bytes as a frame, over max_frame_bytes %d", p.ID, len(b)-1, r.s.maxFrame))
	}
	deadline := time.Now().Add(r.s.timeout)
	if err := c.write(ctx, b, deadline); err != nil {
		if ctx.Err() != nil {
			r.lose(c, ctx.Err()) // half a frame may be in the pipe
			return nil, ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			r.timeouts.Add(1)
			r.lose(c, r.errf("packet %s: not read within timeout_sec %s", p.ID, r.s.timeout))
			return nil, r.fail(r.lastErr)
		}
		why := r.errf("packet %s: write: %v; %s", p.ID, err, c.exitReason())
		r.lose(c, why)
		return nil, r.fail(why)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		it, ok, err := c.next(ctx, timer.C)
		switch {
		case errors.Is(err, errTimeout):
			r.timeouts.Add(1)
			r.lose(c, r.errf("packet %s: no answer within timeout_sec %s (plugin killed, restarts on the next packet)", p.ID, r.s.timeout))
			return nil, r.fail(r.lastErr)
		case err != nil:
			r.lose(c, err)
			return nil, err
		case !ok:
			why := r.errf("packet %s: %s", p.ID, c.exitReason())
			r.lose(c, why)
			return nil, r.fail(why)
		case it.err != nil:
			r.garbage.Add(1)
			why := r.errf("packet %s: %v (plugin killed, restarts on the next packet)", p.ID, it.err)
			r.lose(c, why)
			return nil, r.fail(why)
		}
		f := it.f
		if f.HasID && f.ID < id {
			continue // a late answer; cannot happen after a restart, kept for safety
		}
		switch {
		case f.Type == "result" && f.HasID && f.ID == id:
			out, err := r.results(f, p)
			if err != nil {
				r.garbage.Add(1)
				r.lose(c, err)
				return nil, r.fail(err)
			}
			r.inARow = 0
			return out, nil
		case f.Type == "error" && f.HasID && f.ID == id:
			// The plugin raised for this packet and lives on.
			r.inARow = 0
			msg, _ := f.M.GetString("message")
			return nil, r.fail(r.errf("packet %s: %s", p.ID, msg))
		default:
			r.garbage.Add(1)
			why := r.errf("packet %s: unexpected frame %q (id %d) while waiting for the answer to id %d (plugin killed)", p.ID, f.Type, f.ID, id)
			r.lose(c, why)
			return nil, r.fail(why)
		}
	}
}

func (r *runner) results(f frame, in *packet.Packet) ([]*packet.Packet, error) {
	raw, _ := f.M.Get("packets")
	if raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, r.errf("result %d: \"packets\" must be a list", f.ID)
	}
	out := make([]*packet.Packet, 0, len(list))
	for i, v := range list {
		p, err := toPacket(v, in, r.nodeID, fmt.Sprintf("packets[%d]", i))
		if err != nil {
			return nil, r.errf("result %d: %v", f.ID, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// close stops the current child (close frame, grace, group kill).
func (r *runner) close(ctx context.Context) {
	r.mu.Lock()
	c := r.cur
	r.cur, r.closed = nil, true
	r.mu.Unlock()
	if c != nil {
		c.stop(ctx, 3*time.Second)
	}
}

var metricSpecs = []plugin.MetricSpec{
	{Name: "packets_failed_total", Help: "Packets the plugin did not handle (its error, a crash, a hang, a bad answer): dropped under on_error drop.", Loss: true},
	{Name: "restarts_total", Help: "Plugin processes restarted after a crash, hang or protocol error."},
	{Name: "timeouts_total", Help: "Packets with no answer within timeout_sec (the plugin was killed)."},
	{Name: "protocol_errors_total", Help: "Lines from the plugin that broke the protocol: not JSON, unexpected, over max_frame_bytes."},
}
