package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// Config configures a Supervisor. Engine.Registry is required.
type Config struct {
	GraphsDir string         // graph files NAME.yaml (or .yml); created 0700 if missing
	StateDir  string         // state.json (desired state, per-graph env/origin), serve.lock; created 0700
	Engine    engine.Options // Registry required; Limits: the hostile-input limits; Logger
	AllowEnv  []string       // env names beyond SS_* that a graph's ${oc.env:NAME} may read
	// LookupEnv is the process environment; nil: os.LookupEnv.
	LookupEnv              func(string) (string, bool)
	BackoffMin, BackoffMax time.Duration // 0: 1 s, 60 s
	DrainTimeout           time.Duration // bound on a stop/reload drain; 0: 5 s
	WatchInterval          time.Duration // poll the graphs dir; 0: 1 s; < 0: off
	MaxTaps                int           // open tap streams in total; 0: 64 (more: ErrTooMany)
	Audit                  *audit.Log    // nil: none
	Logger                 *slog.Logger
}

// errClosed: a mutation after Run has begun shutting down.
var errClosed = errors.New("supervisor is shutting down")

// sampleEvery is how often the rates are sampled.
const sampleEvery = time.Second

// Supervisor runs and supervises the graphs of one graphs directory.
type Supervisor struct {
	cfg       Config
	log       *slog.Logger
	allowEnv  map[string]bool
	lookupEnv func(string) (string, bool)
	lock      *lockFile
	initial   map[string]stateEntry // state.json as read by New

	stateMu sync.Mutex // serialises state.json writes
	scanMu  sync.Mutex // one directory scan at a time

	mu       sync.Mutex // guards everything below and every graph's status fields
	graphs   map[string]*graphRec
	running  bool // Run has started graphs
	ran      bool // Run was called
	closing  bool
	taps     int
	warned   map[string]bool // file names already warned about
	wg       sync.WaitGroup  // run goroutines
	closeErr error
}

// graphRec is one supervised graph. opMu serialises its lifecycle (start,
// stop, reload, delete, restart after failure); s.mu guards the fields.
// Lock order: opMu, then s.mu.
type graphRec struct {
	name string
	path string
	opMu sync.Mutex

	pending bool // created by an Apply or a scan not yet committed: invisible
	gone    bool // deleted or its file removed

	yaml    []byte // the version running or to run, as written
	sum     [32]byte
	fp      fileFP // what the watcher last saw on disk
	env     map[string]string
	origin  string
	desired string
	gen     int64
	plan    *engine.Plan         // nil: the file is invalid (invalid says why)
	invalid *engine.InvalidError // the current file's diagnostics when it cannot run

	state        State
	since        time.Time
	restarts     int
	attempt      int // backoff exponent; reset after a run that lasted
	backoffUntil time.Time
	timer        *time.Timer
	token        int64 // bumps on every lifecycle change: stale timers do nothing
	lastError    string
	reloadError  string
	status       string

	cur  *run           // the run in progress, nil when none
	last *run           // the last finished run
	rep  *engine.Report // the last finished run's report

	samples [2]sample // newest first, of cur
	rates   rates
}

// run is one engine.Execute of a graph version.
type run struct {
	gen       int64
	plan      *engine.Plan
	cancel    context.CancelFunc
	startOnce sync.Once
	startedCh chan struct{} // closed once built (Started) or when the build failed
	done      chan struct{}

	// set before startedCh/done close, read after
	x         *engine.Executor
	startedAt time.Time
	rep       *engine.Report
	err       error
	final     runtime.Snapshot
	stopping  bool // stopped on purpose (s.mu)
	taps      map[*tapStream]struct{}
}

func (r *run) markStarted() { r.startOnce.Do(func() { close(r.startedCh) }) }

// New locks StateDir, reads state.json and the graphs directory (files
// are validated, nothing is started: Run starts them).
func New(cfg Config) (*Supervisor, error) {
	if cfg.Engine.Registry == nil {
		return nil, errors.New("serve: Config.Engine.Registry is nil")
	}
	if cfg.GraphsDir == "" || cfg.StateDir == "" {
		return nil, errors.New("serve: GraphsDir and StateDir are required")
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 60 * time.Second
	}
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffMin)
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = runtime.DefaultStopTimeout
	}
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = time.Second
	}
	if cfg.MaxTaps <= 0 {
		cfg.MaxTaps = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Print sinks of every graph share one writer: one lock, so lines of
	// different graphs never interleave.
	if cfg.Engine.Stdout == nil {
		cfg.Engine.Stdout = os.Stdout
	}
	cfg.Engine.Stdout = runtime.Serialized(cfg.Engine.Stdout)
	for _, d := range []string{cfg.GraphsDir, cfg.StateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	s := &Supervisor{cfg: cfg, log: cfg.Logger, allowEnv: map[string]bool{}, lookupEnv: cfg.LookupEnv,
		graphs: map[string]*graphRec{}, warned: map[string]bool{}}
	if s.lookupEnv == nil {
		s.lookupEnv = os.LookupEnv
	}
	for _, n := range cfg.AllowEnv {
		s.allowEnv[n] = true
	}
	lk, err := acquireLock(filepath.Join(cfg.StateDir, "serve.lock"))
	if err != nil {
		return nil, err
	}
	s.lock = lk
	if s.initial, err = readState(filepath.Join(cfg.StateDir, "state.json")); err != nil {
		_ = lk.release()
		return nil, err
	}
	s.scan(true)
	if err := s.saveState(); err != nil { // drops entries whose file is gone
		s.log.Warn("cannot write the state file", "err", err)
	}
	return s, nil
}

// Run starts the graphs whose desired state is running, then watches the
// graphs directory and samples rates until ctx is done; then it stops
// every graph (each drain bounded by DrainTimeout) and returns.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("serve: Run called twice")
	}
	s.ran, s.running = true, true
	var start []*graphRec
	for _, name := range sortedKeys(s.graphs) {
		start = append(start, s.graphs[name])
	}
	s.mu.Unlock()
	for _, g := range start {
		g.opMu.Lock()
		if s.shouldRun(g) {
			s.startLocked(g)
		}
		g.opMu.Unlock()
	}

	// The sampler has its own goroutine so that rates keep coming while a
	// scan waits for a reload's drain.
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.guard("sample", s.sample)
			}
		}
	}()
	var watch <-chan time.Time
	if s.cfg.WatchInterval > 0 {
		t := time.NewTicker(s.cfg.WatchInterval)
		defer t.Stop()
		watch = t.C
	}
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			<-sampling
			return nil
		case <-watch:
			s.guard("watch", func() { s.scan(false) })
		}
	}
}

// guard keeps a bug in the supervisor's own loop from taking the process
// (and every graph) down.
func (s *Supervisor) guard(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("supervisor: recovered panic", "in", what, "panic", fmt.Sprint(r))
		}
	}()
	f()
}

func (s *Supervisor) shutdown() {
	s.mu.Lock()
	s.closing = true
	s.running = false
	var all []*graphRec
	for _, g := range s.graphs {
		all = append(all, g)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.opMu.Lock()
			defer g.opMu.Unlock()
			s.mu.Lock()
			s.cancelBackoffLocked(g)
			s.mu.Unlock()
			s.stopLocked(g, "server stopping")
		}()
	}
	wg.Wait()
	s.wg.Wait()
}

// Close releases the state directory's lock (after Run returned).
func (s *Supervisor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	if s.lock == nil {
		return s.closeErr
	}
	s.closeErr = s.lock.release()
	s.lock = nil
	return s.closeErr
}

// shouldRun: Run is active, the graph wants to run, and it has a valid
// version and no run.
func (s *Supervisor) shouldRun(g *graphRec) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running && !s.closing && !g.gone && !g.pending && g.desired == desiredRunning && g.plan != nil && g.cur == nil
}

func (s *Supervisor) setStateLocked(g *graphRec, st State) {
	if g.state != st {
		g.state, g.since = st, time.Now()
	}
	if st != StateBackoff {
		g.backoffUntil = time.Time{}
	}
}

func (s *Supervisor) cancelBackoffLocked(g *graphRec) {
	g.token++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// engineOptions are a graph's: the restricted env, the drain bound, a
// logger naming the graph, and Started to catch the executor.
func (s *Supervisor) engineOptions(g *graphRec, env map[string]string) engine.Options {
	o := s.cfg.Engine
	o.LookupEnv = s.lookupFor(env)
	o.StopTimeout = s.cfg.DrainTimeout
	lg := o.Logger
	if lg == nil {
		lg = s.log
	}
	o.Logger = lg.With("graph", g.name)
	o.Started = nil
	return o
}

// startLocked starts g's plan and returns once its nodes are built (or the
// build failed: then the graph goes to backoff). Caller holds g.opMu.
func (s *Supervisor) startLocked(g *graphRec) {
	s.mu.Lock()
	if g.cur != nil || g.plan == nil || s.closing {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{gen: g.gen, plan: g.plan, cancel: cancel, startedCh: make(chan struct{}), done: make(chan struct{}), taps: map[*tapStream]struct{}{}}
	g.cur = r
	g.samples = [2]sample{}
	g.rates = rates{}
	s.setStateLocked(g, StateStarting)
	opts := s.engineOptions(g, g.env)
	s.wg.Add(1)
	s.mu.Unlock()

	opts.Started = func(x *engine.Executor) error {
		s.mu.Lock()
		r.x, r.startedAt = x, time.Now()
		s.mu.Unlock()
		r.markStarted()
		return nil
	}
	go func() {
		defer s.wg.Done()
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.err = fmt.Errorf("panic in the runtime: %v", p)
				}
			}()
			r.rep, r.err = engine.Execute(ctx, r.plan, g.path, opts)
		}()
		s.mu.Lock()
		if r.x != nil {
			x := r.x
			s.mu.Unlock()
			snap := x.Snapshot()
			s.mu.Lock()
			r.final = snap
		}
		s.mu.Unlock()
		cancel()
		r.markStarted()
		close(r.done)
		s.ended(g, r)
	}()
	select {
	case <-r.startedCh:
	case <-r.done:
	}
	s.mu.Lock()
	if g.cur == r && r.x != nil && !isDone(r.done) {
		s.setStateLocked(g, StateRunning)
	}
	s.mu.Unlock()
}

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// stopLocked stops g's run, if any, and waits for it to end (bounded by
// the drain timeout and the runtime's grace). Caller holds g.opMu.
func (s *Supervisor) stopLocked(g *graphRec, reason string) {
	s.mu.Lock()
	r := g.cur
	if r == nil {
		if g.state == StateBackoff || g.state == StateStarting {
			s.setStateLocked(g, StateStopped)
		}
		s.mu.Unlock()
		return
	}
	r.stopping = true
	x := r.x
	s.mu.Unlock()
	if x != nil {
		x.Stop()
	}
	r.cancel()
	<-r.done
	s.finish(g, r, reason)
}

// ended is the run goroutine's last act: a run that ended on its own
// (input exhausted, failure) is accounted here; one stopped on purpose
// was accounted by whoever stopped it.
func (s *Supervisor) ended(g *graphRec, r *run) {
	g.opMu.Lock()
	defer g.opMu.Unlock()
	s.finish(g, r, "")
}

// finish records how r ended and decides what follows: stopped, or
// backoff and a restart. It does nothing if r is no longer g's run.
// Caller holds g.opMu.
func (s *Supervisor) finish(g *graphRec, r *run, reason string) {
	s.mu.Lock()
	if g.cur != r {
		s.mu.Unlock()
		return
	}
	g.cur, g.last = nil, r
	if r.rep != nil {
		g.rep = r.rep
		g.status = r.rep.Status
		if r.rep.Stopped && r.rep.Status == "ok" {
			g.status = "stopped"
		}
	}
	failed := runFailure(r)
	switch {
	case reason != "":
	case failed != "":
		reason = "graph failed"
	default:
		reason = "graph ended" // ran out of input
	}
	taps := r.taps
	r.taps = nil
	var restart time.Duration
	switch {
	case r.stopping:
		s.setStateLocked(g, StateStopped)
	case failed != "":
		g.lastError = failed
		if s.closing || !s.running || g.desired != desiredRunning || g.gone {
			s.setStateLocked(g, StateStopped)
			break
		}
		if !r.startedAt.IsZero() && time.Since(r.startedAt) >= s.cfg.BackoffMax {
			g.attempt = 0 // it ran well for a while: start the backoff afresh
		}
		restart = s.cfg.BackoffMin
		for i := 0; i < g.attempt && restart < s.cfg.BackoffMax; i++ {
			restart *= 2
		}
		restart = min(restart, s.cfg.BackoffMax)
		g.attempt++
		s.setStateLocked(g, StateBackoff)
		g.backoffUntil = time.Now().Add(restart)
		s.cancelBackoffLocked(g)
		token := g.token
		g.timer = time.AfterFunc(restart, func() { s.retry(g, token) })
	default:
		s.setStateLocked(g, StateStopped) // ran out of input
	}
	s.mu.Unlock()
	for t := range taps {
		t.end(reason)
	}
	if failed != "" && !r.stopping {
		s.log.Warn("graph failed", "graph", g.name, "err", failed, "restart_in", restart.String())
	}
}

// runFailure is why r failed, "" when it did not.
func runFailure(r *run) string {
	switch {
	case r.err != nil:
		return redact.Text(r.err.Error())
	case r.rep != nil && r.rep.Error != nil:
		e := r.rep.Error
		return redact.Text(fmt.Sprintf("node %q failed (%s): %s", e.Node, e.Phase, e.Message))
	}
	return ""
}

// retry is the backoff timer: start g again unless something changed.
func (s *Supervisor) retry(g *graphRec, token int64) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("supervisor: recovered panic", "in", "retry", "graph", g.name, "panic", fmt.Sprint(p))
		}
	}()
	g.opMu.Lock()
	defer g.opMu.Unlock()
	s.mu.Lock()
	ok := g.token == token && g.state == StateBackoff && !g.gone && s.running && !s.closing && g.desired == desiredRunning && g.cur == nil
	if ok {
		g.restarts++
		g.timer = nil
	}
	restarts, lastErr := g.restarts, g.lastError
	s.mu.Unlock()
	if !ok {
		return
	}
	s.audit("graph.restart_after_failure", g.name, "ok", lastErr, map[string]any{"restarts": restarts})
	s.startLocked(g)
}

// audit appends an event the supervisor decided on its own (the API
// audits what clients ask for).
func (s *Supervisor) audit(action, target, status, reason string, meta map[string]any) {
	if s.cfg.Audit == nil {
		return
	}
	if err := s.cfg.Audit.Append(audit.Event{Actor: "supervisor", Action: action, Target: target, Status: status, Reason: reason, Meta: meta}); err != nil {
		s.log.Error("audit log", "err", err)
	}
}

// lookup returns the committed graph name, or ErrNotFound.
func (s *Supervisor) lookup(name string) (*graphRec, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.graphs[name]
	if g == nil || g.pending || g.gone {
		return nil, fmt.Errorf("graph %q: %w", name, ErrNotFound)
	}
	return g, nil
}

// lockGraph takes g.opMu of a committed graph; it fails if the graph went
// away meanwhile.
func (s *Supervisor) lockGraph(name string) (*graphRec, error) {
	g, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	g.opMu.Lock()
	s.mu.Lock()
	gone, closing := g.gone, s.closing
	s.mu.Unlock()
	if gone {
		g.opMu.Unlock()
		return nil, fmt.Errorf("graph %q: %w", name, ErrNotFound)
	}
	if closing {
		g.opMu.Unlock()
		return nil, errClosed
	}
	return g, nil
}
