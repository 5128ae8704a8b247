package detect

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/childproc"
)

// ProcessConfig configures a child-process adapter.
type ProcessConfig struct {
	Command []string // argv; Command[0] is looked up in PATH
	Dir     string   // working directory; "" = ours
	Env     []string // extra KEY=VALUE entries on top of our environment

	Timeout        time.Duration // per frame: write plus answer
	StartupTimeout time.Duration // for the first frame after a (re)start, while the model loads
	// MaxRestarts is how many restarts in a row (without a good answer in
	// between) are tried before Detect returns ErrGaveUp; 0 means a crash is
	// final, negative means no limit.
	MaxRestarts            int
	BackoffMin, BackoffMax time.Duration // restart delay: doubles from min, capped at max
	// MaxTimeouts is how many timeouts in a row mark the child as hung: it is
	// killed and restarted. A lone slow frame leaves it running (its late
	// answer is recognised by id and skipped).
	MaxTimeouts int

	Logger *slog.Logger // adapter stderr lines and restarts; nil = discard
}

// Process is a child-process adapter. Detect calls are serialised.
type Process struct {
	cfg  ProcessConfig
	name string

	mu        sync.Mutex
	cur       *child
	seq       int64
	inARow    int           // restarts since the last good answer
	backoff   time.Duration // next restart delay
	timeouts  int           // timeouts in a row
	closed    bool
	hdr       []byte
	restarts  atomic.Int64
	lastStart time.Time

	// The previous child's first stderr lines: a restarted adapter that
	// prints the same traceback again (one that fails at import) is not
	// logged again on every restart.
	stderrMu   sync.Mutex
	lastStderr []string
}

// NewProcess returns an adapter for cfg; nothing starts until Start.
func NewProcess(cfg ProcessConfig) *Process {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxTimeouts < 1 {
		cfg.MaxTimeouts = 1
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	return &Process{cfg: cfg, name: childproc.Name(cfg.Command), backoff: cfg.BackoffMin}
}

// Name is the adapter's command line as shown in messages.
func (p *Process) Name() string { return p.name }

// Restarts counts restarts after crashes, hangs and protocol breakage.
func (p *Process) Restarts() int64 { return p.restarts.Load() }

// Start launches the child. A command that cannot be started is an error
// here, so a misconfigured graph fails before any frame flows.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.cfg.Command) == 0 || p.cfg.Command[0] == "" {
		return errors.New("adapter command is empty")
	}
	c, err := p.spawn()
	if err != nil {
		return &Error{Kind: KindCrashed, Adapter: p.name, Err: err}
	}
	p.cur = c
	return nil
}

// child is one running adapter process.
type child struct {
	cmd      *exec.Cmd
	stdin    *os.File
	lines    chan lineItem // closed at stdout EOF
	exited   chan struct{} // closed once Wait returned
	waitErr  error
	answered bool
	tail     *tail
}

type lineItem struct {
	line []byte
	err  error
}

func (p *Process) spawn() (*child, error) {
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Dir = p.cfg.Dir
	if len(p.cfg.Env) > 0 {
		cmd.Env = append(os.Environ(), p.cfg.Env...)
	}
	childproc.SetGroup(cmd)
	// Our own pipe for stdin, not StdinPipe: an *os.File pipe end supports
	// write deadlines, so a child that stops reading cannot block us.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = pr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	pr.Close()
	p.stderrMu.Lock()
	prev := p.lastStderr
	p.stderrMu.Unlock()
	c := &child{cmd: cmd, stdin: pw, lines: make(chan lineItem, 8), exited: make(chan struct{}), tail: &tail{prev: prev}}
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		first := c.tail.copy(stderr, p.cfg.Logger, p.name)
		p.stderrMu.Lock()
		p.lastStderr = first
		p.stderrMu.Unlock()
	}()
	go func() {
		readLines(stdout, c.lines)
		<-stderrDone
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	p.lastStart = time.Now()
	p.cfg.Logger.Debug("adapter started", "adapter", p.name, "pid", cmd.Process.Pid)
	return c, nil
}

// readLines splits stdout into lines until EOF. A line longer than
// maxResponse is reported once and ends reading (the child gets killed).
func readLines(r io.Reader, out chan<- lineItem) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxResponse)
	for sc.Scan() {
		out <- lineItem{line: append([]byte(nil), sc.Bytes()...)}
	}
	if err := sc.Err(); err != nil {
		out <- lineItem{err: err}
		// Keep draining so the child is never blocked on a full pipe.
		_, _ = io.Copy(io.Discard, r)
	}
}

// Detect sends one frame and waits for its detections. req.ID is set here.
// On a crash the child is restarted on the next call (after a backoff);
// failures come back as *Error, a spent restart budget as ErrGaveUp.
func (p *Process) Detect(ctx context.Context, req *Request, img []byte) ([]Detection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, &Error{Kind: KindCrashed, Adapter: p.name, Err: errors.New("adapter closed")}
	}
	if p.cur == nil || p.cur.dead() {
		if err := p.restart(ctx); err != nil {
			return nil, err
		}
	}
	c := p.cur
	p.seq++
	req.ID = p.seq
	req.Bytes = len(img)
	timeout := p.cfg.Timeout
	if !c.answered && p.cfg.StartupTimeout > timeout {
		timeout = p.cfg.StartupTimeout
	}
	deadline := time.Now().Add(timeout)

	hdr, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: encode request: %w", p.name, err)
	}
	p.hdr = append(append(p.hdr[:0], hdr...), '\n')
	_ = c.stdin.SetWriteDeadline(deadline)
	// A cancelled ctx (the run's stop) ends a write the child is not
	// reading, too: the deadline moves to now.
	stopWrite := context.AfterFunc(ctx, func() { _ = c.stdin.SetWriteDeadline(time.Now()) })
	_, err = c.stdin.Write(p.hdr)
	if err == nil {
		_, err = c.stdin.Write(img)
	}
	stopWrite()
	if err != nil && ctx.Err() != nil {
		// Half a request may be in the pipe: the framing is lost, so the
		// child goes (a later Detect restarts it). Not a failure of the
		// adapter: the caller stopped.
		p.kill(c)
		return nil, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Half a request is in the pipe: the framing is lost, start over.
			p.kill(c)
			return nil, p.fail(KindTimeout, fmt.Errorf("request %d: the adapter did not read its input within %s (killed, restarts on the next frame)", req.ID, timeout))
		}
		return nil, p.crashed(ctx, c, fmt.Errorf("request %d: write: %v", req.ID, err))
	}

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case it, ok := <-c.lines:
			if !ok {
				return nil, p.crashed(ctx, c, fmt.Errorf("request %d: stdout closed", req.ID))
			}
			if it.err != nil {
				p.kill(c)
				return nil, p.fail(KindGarbage, fmt.Errorf("request %d: reading stdout: %v (killed, restarts on the next frame)", req.ID, it.err))
			}
			resp, err := ParseResponse(it.line, true)
			if err != nil {
				return nil, p.fail(KindGarbage, fmt.Errorf("request %d: bad answer line %s: %v", req.ID, excerpt(it.line), err))
			}
			if resp.ID < req.ID {
				continue // the late answer to a request that timed out
			}
			if resp.ID > req.ID {
				return nil, p.fail(KindGarbage, fmt.Errorf("request %d: answer carries id %d, which was never sent", req.ID, resp.ID))
			}
			c.answered = true
			p.inARow, p.timeouts, p.backoff = 0, 0, p.cfg.BackoffMin
			if resp.Err != "" {
				return nil, &Error{Kind: KindAdapter, Adapter: p.name, Err: fmt.Errorf("request %d: %s", req.ID, resp.Err)}
			}
			return resp.Detections, nil
		case <-timer.C:
			p.timeouts++
			if p.timeouts >= p.cfg.MaxTimeouts {
				p.kill(c)
				return nil, p.fail(KindTimeout, fmt.Errorf("request %d: no answer within %s, %d times in a row: adapter considered hung (killed, restarts on the next frame)", req.ID, timeout, p.timeouts))
			}
			return nil, p.fail(KindTimeout, fmt.Errorf("request %d: no answer within %s", req.ID, timeout))
		case <-ctx.Done():
			// The child keeps working on this frame; its late answer is
			// recognised by id and skipped if Detect is called again, and
			// Close ends the child.
			return nil, ctx.Err()
		}
	}
}

func (p *Process) fail(k Kind, err error) error {
	return &Error{Kind: k, Adapter: p.name, Err: err}
}

// crashed waits briefly for the child's exit status and builds the error
// with the tail of its stderr, which usually holds the traceback.
func (p *Process) crashed(ctx context.Context, c *child, cause error) error {
	select {
	case <-c.exited:
	case <-time.After(2 * time.Second):
		p.kill(c)
	case <-ctx.Done():
		p.kill(c)
	}
	msg := cause.Error()
	select {
	case <-c.exited:
		msg += fmt.Sprintf("; adapter exited (%v)", exitText(c.waitErr))
	default:
	}
	if t := c.tail.String(); t != "" {
		msg += "; last stderr: " + t
	}
	return &Error{Kind: KindCrashed, Adapter: p.name, Err: errors.New(msg)}
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func (c *child) dead() bool {
	select {
	case <-c.exited:
		return true
	default:
		return c.cmd == nil
	}
}

// kill ends the child and its process group and forgets it; the next
// Detect restarts.
func (p *Process) kill(c *child) {
	_ = c.stdin.Close()
	childproc.KillGroup(c.cmd) // the waiter goroutine reaps it
	if p.cur == c {
		p.cur = &child{exited: closedChan, stdin: c.stdin, tail: c.tail}
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// restart replaces a dead child after the backoff delay, or reports
// ErrGaveUp once MaxRestarts restarts in a row brought no good answer.
func (p *Process) restart(ctx context.Context) error {
	if p.cfg.MaxRestarts >= 0 && p.inARow >= p.cfg.MaxRestarts {
		return &Error{Kind: KindCrashed, Adapter: p.name,
			Err: fmt.Errorf("%w: %d restart(s) in a row without a good answer (max_restarts %d)", ErrGaveUp, p.inARow, p.cfg.MaxRestarts)}
	}
	d := p.backoff
	p.backoff = min(2*p.backoff, p.cfg.BackoffMax)
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
	p.inARow++
	p.restarts.Add(1)
	p.timeouts = 0
	p.cfg.Logger.Warn("restarting adapter", "adapter", p.name, "attempt", p.inARow, "after", d)
	c, err := p.spawn()
	if err != nil {
		p.cur = &child{exited: closedChan, tail: &tail{}}
		return &Error{Kind: KindCrashed, Adapter: p.name, Err: err}
	}
	p.cur = c
	return nil
}

// Close closes the child's stdin (the protocol's "no more frames"), waits
// for it to exit until ctx ends, then kills its process group. Idempotent.
func (p *Process) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	c := p.cur
	p.cur = nil
	if c == nil || c.cmd == nil {
		return nil
	}
	_ = c.stdin.Close()
	wait := time.NewTimer(3 * time.Second)
	defer wait.Stop()
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
	case <-wait.C:
	}
	childproc.KillGroup(c.cmd)
	<-c.exited
	return nil
}

// tail keeps the last lines of a child's stderr for crash messages and
// logs each line (the first 100 per child, then every 100th, so a chatty
// adapter cannot flood the log). Lines that repeat the previous child's,
// line for line from the start, are not logged again.
type tail struct {
	childproc.Tail
	prev []string // the previous child's first lines
}

// stderrKeep is how many first lines of a child's stderr are logged (then
// every 100th) and remembered for the next child.
const stderrKeep = 100

// copy logs and keeps r's lines until EOF and returns the first
// stderrKeep of them.
func (t *tail) copy(r io.Reader, log *slog.Logger, name string) []string {
	n, repeated := 0, 0
	var first []string
	same := true // every line so far repeats the previous child's
	childproc.ScanLines(r, func(line string) {
		n++
		if n <= stderrKeep {
			first = append(first, line)
		}
		same = same && n <= len(t.prev) && t.prev[n-1] == line
		switch {
		case same:
			repeated++
		case n <= stderrKeep || n%100 == 0:
			if repeated > 0 {
				log.Info("adapter stderr: the restarted adapter repeats the previous start's first lines (not logged again)", "adapter", name, "lines", repeated)
				repeated = 0
			}
			log.Info("adapter stderr", "adapter", name, "line", line)
		}
		t.Add(line)
	})
	if repeated > 0 {
		log.Info("adapter stderr: the restarted adapter printed the same lines as its previous start (not logged again)", "adapter", name, "lines", repeated)
	}
	return first
}
