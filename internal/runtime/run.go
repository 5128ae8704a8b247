// Package runtime executes a validated graph: one goroutine per node,
// bounded batched inboxes between them, overflow policies, --max-events,
// graceful drain on stop, and per-node counters for the report.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Options tune a run.
type Options struct {
	MaxEvents  int64         // stop sources after exactly this many emits in total; 0 = no limit
	InboxMax   int           // default inbox bound in packets (default 1024)
	InboxBytes int64         // default inbox bound in bytes of packet.Sized values, in graphs with a plugin.LargePackets node (default DefaultInboxBytes)
	BatchMax   int           // packets per hand-off batch (default 256)
	Logger     *slog.Logger  // nil: discard
	Stdout     io.Writer     // where print sinks write (default os.Stdout, serialised)
	Stdin      io.Reader     // what stdin sources read (default os.Stdin)
	CloseAfter time.Duration // bound on all Close calls together (default 15 s)
	// StopTimeout bounds the drain after Stop (default DefaultStopTimeout):
	// when it expires the node context is cancelled and what is still in
	// the inboxes is abandoned (counted, never nacked).
	StopTimeout time.Duration
	// StopGrace is how long node goroutines get to return after the node
	// context was cancelled before they are reported stuck and the nodes
	// are closed anyway (default DefaultStopGrace).
	StopGrace time.Duration
}

// Stop bounds: a signal stop takes at most StopTimeout + StopGrace +
// CloseAfter (5 + 2 + 15 s by default), under systemd's TimeoutStopSec.
const (
	DefaultStopTimeout = 5 * time.Second
	DefaultStopGrace   = 2 * time.Second
	DefaultCloseAfter  = 15 * time.Second
)

// NodeError is a failure attributed to a node.
type NodeError struct {
	NodeID string
	Plugin string
	Phase  string // build, start, run, process, close
	Err    error
}

func (e *NodeError) Error() string {
	return fmt.Sprintf("node %q (%s) %s: %v", e.NodeID, e.Plugin, e.Phase, e.Err)
}

func (e *NodeError) Unwrap() error { return e.Err }

// node is a running node.
type node struct {
	pn       *graph.PlanNode
	inst     any
	in       *inbox
	out      []*outEdge
	source   bool
	sink     bool
	logger   *slog.Logger
	failed   atomic.Bool
	finished atomic.Bool

	// taps observe what the node emits (Executor.Tap); nil almost always.
	// tapIn: the node has no out-edges, so taps see what it consumes.
	taps  atomic.Pointer[taps]
	tapIn bool

	consumed  atomic.Int64
	produced  atomic.Int64
	abandoned atomic.Int64 // packets given up at a stop that outlived StopTimeout
	holding   atomic.Int64 // packets taken from the inbox and not yet finished

	// Liveness (Executor.Liveness): when the current call (Start, Process,
	// ProcessBatch) began or last emitted, in UnixNano; 0 outside calls.
	callSince atomic.Int64
	pushing   atomic.Bool // blocked handing packets to a full inbox (backpressure)

	errors  atomic.Int64 // packets that failed in this node (PacketError)
	batches atomic.Int64
	busyNs  atomic.Int64 // time inside Process/ProcessBatch
	maxNs   atomic.Int64 // slowest single call

	// Per-packet failures are counted; the log gets the first one and
	// then at most one line per 10 s with the count in between, so an
	// outage does not flood stderr.
	failLog plugin.RateLog
}

// warnPacket logs a per-packet failure, rate-limited.
func (n *node) warnPacket(msg string, count int, err error, attrs ...any) {
	n.failLog.WarnN(n.logger, int64(count), msg, append(attrs, "packets", count, "err", err)...)
}

type outEdge struct {
	e      *graph.Edge
	dst    *node
	port   string // from_port as routed: "" = default
	toPort string
	buf    []item
	mark   int // len(buf) before the current call (emitter.mark)
}

// Executor runs one plan once.
type Executor struct {
	plan  *graph.Plan
	opts  Options
	nodes []*node
	byID  map[string]*node
	log   *slog.Logger

	srcCtx    context.Context // cancelled: sources stop (soft stop)
	srcCancel context.CancelFunc
	nodeCtx   context.Context // cancelled: everything stops (hard stop)
	hardStop  context.CancelFunc

	weighted bool // a node emits packet.Sized values: weigh packets, bound inboxes by bytes

	emitted   atomic.Int64 // source emits, for --max-events
	srcEmit   atomic.Int64
	inflight  atomic.Int64 // cyclic graphs: packets queued or being processed
	sourcesUp atomic.Int64

	stopTimer *time.Timer   // set by the first Stop: expires the drain
	expired   atomic.Bool   // the drain outlived StopTimeout: node ctx cancelled, inboxes abandoned
	expiredCh chan struct{} // closed when expired is set
	drained   atomic.Bool   // every node goroutine has returned (or was left behind as stuck)
	stuck     []string      // nodes whose goroutine had not returned StopGrace after expiry

	mu       sync.Mutex
	firstErr *NodeError
	errs     []*NodeError
	stopped  atomic.Bool
	aborted  atomic.Bool
	started  time.Time
	ended    time.Time
}

// Serialized returns w with its writes serialised, so that the lines of
// print sinks in different goroutines (and, under serve, of different
// graphs) never interleave.
func Serialized(w io.Writer) io.Writer { return &lockedWriter{w: w} }

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// DefaultInboxBytes is the default byte bound of an inbox in graphs that
// carry large values: about 23 decoded 720p frames (yuv420p), 5 at 1080p
// in bgr24.
const DefaultInboxBytes = 32 << 20

// New builds every node (constructors only; nothing is started). On a
// constructor failure the nodes built so far are closed and the error names
// the node.
func New(plan *graph.Plan, opts Options) (*Executor, error) {
	if opts.InboxMax <= 0 {
		opts.InboxMax = 1024
	}
	if opts.BatchMax <= 0 {
		opts.BatchMax = 256
	}
	if opts.InboxBytes <= 0 {
		opts.InboxBytes = DefaultInboxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stdin == nil {
		opts.Stdin = os.Stdin
	}
	if opts.CloseAfter <= 0 {
		opts.CloseAfter = DefaultCloseAfter
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	stdout := Serialized(opts.Stdout)
	x := &Executor{plan: plan, opts: opts, byID: map[string]*node{}, log: opts.Logger, expiredCh: make(chan struct{})}
	x.srcCtx, x.srcCancel = context.WithCancel(context.Background())
	x.nodeCtx, x.hardStop = context.WithCancel(context.Background())

	inDegree := map[string]int{}
	for _, pn := range plan.Nodes {
		inDegree[pn.ID] = len(pn.In)
	}
	commits := commitDownstream(plan)
	for _, pn := range plan.Nodes {
		lg := opts.Logger.With("node", pn.ID, "plugin", pn.Plugin)
		env := plugin.Env{NodeID: pn.ID, Kind: pn.Kind, Plugin: pn.Plugin, Logger: lg, Stdout: stdout, Stdin: opts.Stdin,
			GraphDir: dirOf(plan.Graph.File), CommitDownstream: commits[pn.ID]}
		inst, err := buildNode(pn, env)
		if err != nil {
			ne := &NodeError{NodeID: pn.ID, Plugin: pn.Plugin, Phase: "build", Err: err}
			x.closeAll(context.Background())
			return nil, ne
		}
		n := &node{pn: pn, inst: inst, logger: lg, source: pn.Kind == graph.KindSource, sink: pn.Kind == graph.KindSink}
		warnUndeclared(n)
		max, policy := opts.InboxMax, overflowBlock
		if pn.Runtime.InboxMax > 0 {
			max = pn.Runtime.InboxMax
		}
		switch pn.Runtime.Overflow {
		case graph.OverflowDropNew:
			policy = overflowDropNew
		case graph.OverflowDropOldest:
			policy = overflowDropOldest
		case graph.OverflowError:
			policy = overflowErr
		}
		cycleGate := plan.Cyclic && (pn.Kind == graph.KindDelay || pn.Kind == graph.KindInitial)
		if cycleGate && (policy == overflowBlock) {
			// A cycle needs one inbox that never blocks, or it can
			// deadlock; and an unbounded one lets a growing cycle take
			// all memory. Bounded, a full one ends the run (the cycle
			// grows faster than it drains) unless the graph drops.
			policy = overflowErr
		}
		senders := inDegree[pn.ID]
		if plan.Cyclic {
			senders = 1 << 30 // closed by quiescence, not by senders
		}
		if !n.source {
			n.in = newInbox(max, 0, policy, senders)
			n.in.cycleGate = cycleGate
		}
		if _, ok := inst.(plugin.LargePackets); ok {
			x.weighted = true
		}
		x.nodes = append(x.nodes, n)
		x.byID[pn.ID] = n
	}
	if x.weighted {
		// Frames (or other large values) travel: bound every inbox by
		// their bytes too, so memory does not scale with inbox_max.
		for _, n := range x.nodes {
			if n.in == nil {
				continue
			}
			n.in.maxBytes = opts.InboxBytes
			if b := n.pn.Runtime.InboxMaxBytes; b > 0 {
				n.in.maxBytes = b
			}
		}
	}
	for _, n := range x.nodes {
		n.tapIn = !n.source && len(n.pn.Out) == 0
		ports := n.pn.OutPorts()
		for _, e := range n.pn.Out {
			port := e.FromPort
			if len(ports) == 0 {
				port = "" // the plugin has no ports: every edge gets every packet (upstream)
			}
			n.out = append(n.out, &outEdge{e: e, dst: x.byID[e.To], port: port, toPort: e.ToPort})
		}
	}
	// A --max-events budget counts emits, so a source that emitted fewer
	// packets would let different ones through: no hints then.
	if !plan.Cyclic && opts.MaxEvents == 0 {
		for _, n := range x.nodes {
			if d, ok := n.inst.(plugin.Downstream); ok && len(n.out) == 1 && inDegree[n.out[0].dst.pn.ID] == 1 {
				d.Downstream(n.out[0].dst.inst, x.skipper(n, n.out[0].dst))
			}
		}
	}
	return x, nil
}

// LargePackets reports whether a node carries packet.Sized values
// (plugin.LargePackets), so inboxes are bounded by bytes too.
func (x *Executor) LargePackets() bool { return x.weighted }

// skipper accounts packets a node did not produce because next would have
// dropped them (plugin.Downstream) as if they had travelled.
func (x *Executor) skipper(n, next *node) func(int64) {
	return func(k int64) {
		if k <= 0 {
			return
		}
		if n.source {
			x.srcEmit.Add(k)
		}
		n.produced.Add(k)
		next.consumed.Add(k)
	}
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' || p[i] == '\\' {
			return p[:i]
		}
	}
	return "."
}

// warnUndeclared logs the metrics a node reports that its spec does not
// declare: they reach the report, but only the spec can mark a loss, so a
// loss counter left out of it would never make the run degraded.
func warnUndeclared(n *node) {
	m, ok := n.inst.(plugin.Metrics)
	if !ok {
		return
	}
	for _, v := range m.Metrics() {
		if _, ok := n.pn.Entry.Metric(v.Name); !ok {
			n.logger.Warn("metric not declared in the plugin's spec (Spec.Metrics): reported, never counted as a loss", "metric", v.Name)
		}
	}
}

func buildNode(pn *graph.PlanNode, env plugin.Env) (inst any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in constructor: %v", r)
		}
	}()
	inst, err = pn.Entry.Build(pn.Decoded, env)
	if err != nil {
		return nil, err
	}
	if pn.Kind == graph.KindSource {
		if _, ok := inst.(plugin.Source); !ok {
			return nil, fmt.Errorf("source node plugin must implement Run: %s", pn.Plugin)
		}
	} else {
		_, p := inst.(plugin.Processor)
		_, bp := inst.(plugin.BatchProcessor)
		if !p && !bp {
			return nil, fmt.Errorf("node plugin must implement Process: %s", pn.Plugin)
		}
	}
	return inst, nil
}

// Stopping reports whether a graceful stop has begun (readiness probes
// say "not ready" from then on).
func (x *Executor) Stopping() bool { return x.stopped.Load() }

// Stop asks for a graceful stop: Stopping() on plugin.Stopper nodes,
// sources' ctx cancelled, everything already emitted drains through the
// graph, then nodes close. If the drain has not finished within
// StopTimeout, the node context is cancelled and what is still queued is
// abandoned (expire). Safe to call twice and from any goroutine.
func (x *Executor) Stop() {
	if x.stopped.CompareAndSwap(false, true) {
		x.log.Info("stopping: sources stop, in-flight packets drain", "stop_timeout", x.opts.StopTimeout.String())
		x.mu.Lock()
		x.stopTimer = time.AfterFunc(x.opts.StopTimeout, x.expire)
		x.mu.Unlock()
		for _, n := range x.nodes {
			if s, ok := n.inst.(plugin.Stopper); ok {
				s.Stopping()
			}
		}
	}
	x.srcCancel()
}

// expire ends a drain that outlived StopTimeout: the node context is
// cancelled (every Start/Process/ProcessBatch must return promptly), no
// new call starts, and the packets still queued are abandoned: counted
// per node, neither forwarded nor nacked.
func (x *Executor) expire() {
	if x.drained.Load() && !x.aborted.Load() {
		return // the node goroutines are done: nothing left to cut short
	}
	if !x.expired.CompareAndSwap(false, true) {
		return
	}
	x.hardStop()
	var total int64
	for _, n := range x.nodes {
		if n.in != nil {
			k := int64(n.in.abandon())
			n.abandoned.Add(k)
			total += k
		}
	}
	x.log.Warn("stop timeout: node context cancelled, queued packets abandoned",
		"stop_timeout", x.opts.StopTimeout.String(), "abandoned_queued", total)
	close(x.expiredCh)
}

// Abort stops at once: inboxes are abandoned and node contexts cancelled.
func (x *Executor) Abort() {
	x.aborted.Store(true)
	x.srcCancel()
	x.expire()
}

// interrupted says whether the node context has been cancelled: calls
// that end now are interrupted work, not failures.
func (x *Executor) interrupted() bool { return x.nodeCtx.Err() != nil }

func (x *Executor) fail(n *node, phase string, err error) {
	ne := &NodeError{NodeID: n.pn.ID, Plugin: n.pn.Plugin, Phase: phase, Err: err}
	x.mu.Lock()
	if x.firstErr == nil {
		x.firstErr = ne
	}
	x.errs = append(x.errs, ne)
	x.mu.Unlock()
	n.failed.Store(true)
	n.logger.Error("node failed", "phase", phase, "err", err)
	// Stop the sources and let the rest of the graph drain; the failed
	// node's inbox swallows what still arrives, so nothing blocks on it.
	x.srcCancel()
	if n.in != nil {
		if k := n.in.setDiscard(); x.plan.Cyclic && k > 0 {
			x.done(k) // a cycle's in-flight count must stay exact, or it never ends
		}
	}
}

// Run starts every node and blocks until the graph has drained and every
// node is closed. ctx cancellation acts as Stop. A stop is bounded: after
// StopTimeout the rest is abandoned, after a further StopGrace goroutines
// that ignore their ctx are reported stuck and left behind, and Close
// calls share CloseAfter; Run always returns its Result.
func (x *Executor) Run(ctx context.Context) *Result {
	x.started = time.Now()
	stopWatch := context.AfterFunc(ctx, x.Stop)
	defer stopWatch()

	var wg sync.WaitGroup
	for _, n := range x.nodes {
		if n.source {
			x.sourcesUp.Add(1)
		}
	}
	if x.plan.Cyclic && x.sourcesUp.Load() == 0 {
		// No source: a cyclic graph is quiescent from the start.
		defer x.checkQuiescent()
	}
	for _, n := range x.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.runNode(n)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		if x.expired.Load() {
			<-x.expiredCh // expire may still be counting what it abandoned
		}
	case <-x.expiredCh:
		grace := time.NewTimer(x.opts.StopGrace)
		select {
		case <-done:
		case <-grace.C:
			for _, n := range x.nodes {
				if !n.finished.Load() {
					x.stuck = append(x.stuck, n.pn.ID)
					n.abandoned.Add(n.holding.Swap(0))
					n.logger.Error("node did not return after its context was cancelled: left running, closing anyway",
						"grace", x.opts.StopGrace.String(), "in_call_for", x.inCallFor(n, time.Now()).Round(time.Millisecond).String())
				}
			}
		}
		grace.Stop()
	}
	x.drained.Store(true)
	x.mu.Lock()
	if x.stopTimer != nil {
		x.stopTimer.Stop()
	}
	x.mu.Unlock()
	x.ended = time.Now()
	cctx, cancel := context.WithTimeout(context.Background(), x.opts.CloseAfter)
	defer cancel()
	closeErr := x.closeAll(cctx)
	return x.result(closeErr)
}

func (x *Executor) runNode(n *node) {
	defer n.finished.Store(true)
	em := &emitter{x: x, n: n}
	defer func() {
		if r := recover(); r != nil {
			n.logger.Debug("panic stack", "stack", string(debug.Stack()))
			x.fail(n, "run", fmt.Errorf("panic: %v", r))
		}
		em.flushAll()
		for _, o := range n.out {
			if o.dst.in != nil {
				o.dst.in.closeSender()
			}
		}
		if n.source {
			x.sourcesUp.Add(-1)
			if x.plan.Cyclic {
				x.checkQuiescent()
			}
		}
	}()
	if s, ok := n.inst.(plugin.Starter); ok {
		if !n.source {
			n.enter()
		}
		err := s.Start(x.nodeCtx)
		n.leave()
		if err != nil {
			if x.interrupted() {
				return // stopped while starting: not a failure
			}
			x.fail(n, "start", err)
			if n.in != nil {
				x.drainDiscard(n)
			}
			return
		}
	}
	if n.source {
		em.source = true
		err := n.inst.(plugin.Source).Run(x.srcCtx, em)
		if err != nil && !errors.Is(err, plugin.ErrStop) && !errors.Is(err, context.Canceled) {
			x.fail(n, "run", err)
		}
		return
	}
	if _, ok := n.inst.(plugin.Flusher); ok {
		em.async()
	}
	x.process(n, em)
}

// enter and leave mark a node call for Liveness.
func (n *node) enter() { n.callSince.Store(time.Now().UnixNano()) }
func (n *node) leave() { n.callSince.Store(0) }

// drainDiscard consumes a failed node's inbox until its senders finish.
func (x *Executor) drainDiscard(n *node) {
	for {
		items, ok := n.in.take(0)
		if !ok {
			return
		}
		if x.plan.Cyclic {
			x.done(len(items))
		}
	}
}

func (x *Executor) process(n *node, em *emitter) {
	bp, isBatch := n.inst.(plugin.BatchProcessor)
	p, _ := n.inst.(plugin.Processor)
	pp, isPort := n.inst.(plugin.PortProcessor)
	fl, isFlusher := n.inst.(plugin.Flusher)
	batch := make([]*packet.Packet, 0, x.opts.BatchMax)
	ctx := x.nodeCtx
	for {
		items, ok := n.in.take(0)
		if !ok {
			if isFlusher && !n.failed.Load() {
				// A Flush cut short by the stop timeout is not a failure:
				// what it had not finished is abandoned, never nacked.
				if err := x.call(n, func() error { return fl.Flush(ctx, em) }); err != nil && !x.interrupted() {
					x.fail(n, "flush", err)
				}
			}
			return
		}
		n.holding.Store(int64(len(items)))
		if x.interrupted() {
			// No new call once the node context is cancelled.
			n.abandoned.Add(n.holding.Swap(0))
			return
		}
		if n.failed.Load() {
			if x.plan.Cyclic {
				x.done(len(items))
			}
			continue
		}
		t0 := time.Now()
		n.consumed.Add(int64(len(items)))
		if n.tapIn {
			if ts := n.taps.Load(); ts != nil {
				for _, it := range items {
					ts.call(it.port, it.p)
				}
			}
		}
		var err error
		switch {
		case isBatch && !(isPort && hasPort(items)):
			batch = batch[:0]
			for _, it := range items {
				batch = append(batch, it.p)
			}
			em.mark()
			err = x.call(n, func() error { return bp.ProcessBatch(ctx, batch, em) })
			if x.settleCall(n, em, err) {
				return
			}
			if pe := (*plugin.PacketError)(nil); err != nil && errors.As(err, &pe) {
				n.errors.Add(int64(len(batch)))
				for _, pk := range batch {
					nack(pk, pe.Err)
				}
				n.warnPacket("batch failed", len(batch), pe.Err)
				err = nil
			}
		default:
			for i, it := range items {
				n.holding.Store(int64(len(items) - i))
				if x.interrupted() {
					n.abandoned.Add(n.holding.Swap(0))
					em.flushAll()
					return
				}
				em.mark()
				if isPort && it.port != "" {
					err = x.call(n, func() error { return pp.ProcessPort(ctx, it.port, it.p, em) })
				} else if p != nil {
					err = x.call(n, func() error { return p.Process(ctx, it.p, em) })
				} else {
					err = x.call(n, func() error { return bp.ProcessBatch(ctx, []*packet.Packet{it.p}, em) })
				}
				if x.settleCall(n, em, err) {
					return
				}
				if pe := (*plugin.PacketError)(nil); err != nil && errors.As(err, &pe) {
					n.errors.Add(1)
					nack(it.p, pe.Err)
					n.warnPacket("packet failed", 1, pe.Err, "packet_id", it.p.ID)
					err = nil
					continue
				}
				if err != nil {
					break
				}
			}
		}
		if err == nil && isFlusher && x.plan.Cyclic {
			// Finish the batch before counting it done, so that
			// quiescence is not declared while packets are in flight.
			err = x.call(n, func() error { return fl.Flush(ctx, em) })
		}
		n.holding.Store(0)
		em.flushAll()
		d := time.Since(t0).Nanoseconds()
		n.busyNs.Add(d)
		n.batches.Add(1)
		if d > n.maxNs.Load() {
			n.maxNs.Store(d)
		}
		if x.plan.Cyclic {
			x.done(len(items))
		}
		if err != nil {
			if errors.Is(err, plugin.ErrStop) && x.aborted.Load() {
				return
			}
			x.fail(n, "process", err)
			x.drainDiscard(n)
			return
		}
	}
}

// settleCall accounts the emits of a call that returned err and reports
// whether the stop interrupted it: then its input is abandoned (neither
// failed nor done) and its partial output dropped, and the node's loop
// ends.
func (x *Executor) settleCall(n *node, em *emitter, err error) bool {
	interrupted := err != nil && x.interrupted()
	em.settle(interrupted)
	if interrupted {
		n.abandoned.Add(n.holding.Swap(0))
		em.rollback()
		em.flushAll()
	}
	return interrupted
}

func hasPort(items []item) bool {
	for _, it := range items {
		if it.port != "" {
			return true
		}
	}
	return false
}

func nack(p *packet.Packet, err error) {
	if p.Nack != nil {
		p.Nack(err)
	}
}

// call runs one node call, turning a panic into an error, and marks it
// for Liveness.
func (x *Executor) call(n *node, f func() error) (err error) {
	n.enter()
	defer func() {
		n.leave()
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, firstFrames(debug.Stack()))
		}
	}()
	return f()
}

func firstFrames(stack []byte) string {
	const max = 2048
	if len(stack) > max {
		return string(stack[:max]) + "..."
	}
	return string(stack)
}

// done accounts for processed packets in a cyclic graph.
func (x *Executor) done(n int) {
	if x.inflight.Add(int64(-n)) == 0 {
		x.checkQuiescent()
	}
}

// checkQuiescent closes every inbox of a cyclic graph once all sources
// have ended and no packet is queued or being processed.
func (x *Executor) checkQuiescent() {
	if x.sourcesUp.Load() == 0 && x.inflight.Load() == 0 {
		for _, n := range x.nodes {
			if n.in != nil {
				n.in.forceClose()
			}
		}
	}
}

// closeAll closes every built node in reverse declaration order (reverse
// topological for a DAG declared in order), collecting every error.
func (x *Executor) closeAll(ctx context.Context) error {
	order := x.closeOrder()
	var errs []error
	for _, n := range order {
		c, ok := n.inst.(plugin.Closer)
		if !ok {
			continue
		}
		done := make(chan error, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					done <- fmt.Errorf("panic: %v", r)
				}
			}()
			done <- c.Close(ctx)
		}()
		select {
		case err := <-done:
			if err != nil {
				ne := &NodeError{NodeID: n.pn.ID, Plugin: n.pn.Plugin, Phase: "close", Err: err}
				errs = append(errs, ne)
			}
		case <-ctx.Done():
			errs = append(errs, &NodeError{NodeID: n.pn.ID, Plugin: n.pn.Plugin, Phase: "close", Err: fmt.Errorf("did not close within %s", x.opts.CloseAfter)})
		}
	}
	return errors.Join(errs...)
}

// closeOrder is a reverse topological order (sinks first).
func (x *Executor) closeOrder() []*node {
	indeg := map[*node]int{}
	for _, n := range x.nodes {
		for _, o := range n.out {
			indeg[o.dst]++
		}
	}
	var order []*node
	var queue []*node
	for _, n := range x.nodes {
		if indeg[n] == 0 {
			queue = append(queue, n)
		}
	}
	seen := map[*node]bool{}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		order = append(order, n)
		for _, o := range n.out {
			indeg[o.dst]--
			if indeg[o.dst] == 0 {
				queue = append(queue, o.dst)
			}
		}
	}
	for _, n := range x.nodes { // nodes on cycles
		if !seen[n] {
			order = append(order, n)
		}
	}
	slices.Reverse(order)
	return order
}

// inCallFor is how long n has been inside its current call without
// emitting; 0 outside calls.
func (x *Executor) inCallFor(n *node, now time.Time) time.Duration {
	s := n.callSince.Load()
	if s == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, s))
}

// Liveness reports whether the graph is making progress, for the service
// watchdog: nil while every non-source node goroutine is waiting for
// input, blocked handing packets to a full inbox (backpressure: the stall
// is downstream, and is found there), or inside a call (Start, Process,
// ProcessBatch) that began, or last emitted, less than stall ago.
// Otherwise an error naming the node and how long it has been in its call.
//
// Sources count as live: Run is one call for the whole run by design
// (waiting for a camera, a queue or a timer), so a source that hangs is
// not caught here; what it feeds shows as idle, not stuck.
func (x *Executor) Liveness(stall time.Duration) error {
	now := time.Now()
	for _, n := range x.nodes {
		if n.source || n.finished.Load() || n.pushing.Load() {
			continue
		}
		if d := x.inCallFor(n, now); d > stall {
			return &StallError{NodeID: n.pn.ID, Plugin: n.pn.Plugin, InCall: d, Stall: stall}
		}
	}
	return nil
}

// StallError is Liveness's answer for a node stuck in a call.
type StallError struct {
	NodeID, Plugin string
	InCall, Stall  time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("node %q (%s) has been inside one call for %s without emitting (watchdog stall limit %s)",
		e.NodeID, e.Plugin, e.InCall.Round(time.Millisecond), e.Stall)
}

// commitDownstream says, per node id, whether a node that commits durably
// (plugin.Spec.Commits) is reachable from it along the graph's edges.
func commitDownstream(plan *graph.Plan) map[string]bool {
	byID := make(map[string]*graph.PlanNode, len(plan.Nodes))
	for _, pn := range plan.Nodes {
		byID[pn.ID] = pn
	}
	memo := map[string]bool{}
	var reach func(id string, seen map[string]bool) bool
	reach = func(id string, seen map[string]bool) bool {
		if v, ok := memo[id]; ok {
			return v
		}
		if seen[id] { // a cycle through delay/initial nodes
			return false
		}
		seen[id] = true
		pn := byID[id]
		found := false
		if pn != nil {
			for _, e := range pn.Out {
				if to := byID[e.To]; to != nil && ((to.Entry != nil && to.Entry.Commits) || reach(e.To, seen)) {
					found = true
					break
				}
			}
		}
		memo[id] = found
		return found
	}
	out := make(map[string]bool, len(plan.Nodes))
	for _, pn := range plan.Nodes {
		out[pn.ID] = reach(pn.ID, map[string]bool{})
	}
	return out
}
