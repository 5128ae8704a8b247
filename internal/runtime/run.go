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
	MaxEvents  int64        // stop sources after exactly this many emits in total; 0 = no limit
	InboxMax   int          // default inbox bound in packets (default 1024)
	InboxBytes int64        // default inbox bound in bytes of packet.Sized values, in graphs with a plugin.LargePackets node (default DefaultInboxBytes)
	BatchMax   int          // packets per hand-off batch (default 256)
	Logger     *slog.Logger // nil: discard
	Stdout     io.Writer    // where print sinks write (default os.Stdout, serialised)
	CloseAfter time.Duration
}

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

	consumed atomic.Int64
	produced atomic.Int64
	errors   atomic.Int64 // packets that failed in this node (PacketError)
	batches  atomic.Int64
	busyNs   atomic.Int64 // time inside Process/ProcessBatch
	maxNs    atomic.Int64 // slowest single call

	// Per-packet failures are counted; the log gets the first one and
	// then at most one line per logEvery with the count in between, so an
	// outage does not flood stderr.
	lastLog    time.Time
	suppressed int64
}

const logEvery = 10 * time.Second

// warnPacket logs a per-packet failure, rate-limited. Only the node's own
// goroutine calls it.
func (n *node) warnPacket(msg string, count int, err error, attrs ...any) {
	now := time.Now()
	if !n.lastLog.IsZero() && now.Sub(n.lastLog) < logEvery {
		n.suppressed += int64(count)
		return
	}
	if n.suppressed > 0 {
		attrs = append(attrs, "suppressed_since_last", n.suppressed)
	}
	n.logger.Warn(msg, append(attrs, "packets", count, "err", err)...)
	n.lastLog, n.suppressed = now, 0
}

type outEdge struct {
	e      *graph.Edge
	dst    *node
	port   string // from_port as routed: "" = default
	toPort string
	buf    []item
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

	mu       sync.Mutex
	firstErr *NodeError
	errs     []*NodeError
	stopped  atomic.Bool
	aborted  atomic.Bool
	started  time.Time
	ended    time.Time
}

// lockedWriter serialises writes from print sinks in different goroutines,
// so that their lines never interleave.
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
	if opts.CloseAfter <= 0 {
		opts.CloseAfter = 15 * time.Second
	}
	stdout := &lockedWriter{w: opts.Stdout}
	x := &Executor{plan: plan, opts: opts, byID: map[string]*node{}, log: opts.Logger}
	x.srcCtx, x.srcCancel = context.WithCancel(context.Background())
	x.nodeCtx, x.hardStop = context.WithCancel(context.Background())

	inDegree := map[string]int{}
	for _, pn := range plan.Nodes {
		inDegree[pn.ID] = len(pn.In)
	}
	for _, pn := range plan.Nodes {
		lg := opts.Logger.With("node", pn.ID, "plugin", pn.Plugin)
		env := plugin.Env{NodeID: pn.ID, Kind: pn.Kind, Plugin: pn.Plugin, Logger: lg, Stdout: stdout, GraphDir: dirOf(plan.Graph.File)}
		inst, err := buildNode(pn, env)
		if err != nil {
			ne := &NodeError{NodeID: pn.ID, Plugin: pn.Plugin, Phase: "build", Err: err}
			x.closeAll(context.Background())
			return nil, ne
		}
		n := &node{pn: pn, inst: inst, logger: lg, source: pn.Kind == graph.KindSource, sink: pn.Kind == graph.KindSink}
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
		if plan.Cyclic && (pn.Kind == graph.KindDelay || pn.Kind == graph.KindInitial) {
			max = 0 // a cycle needs one node that never blocks, or it can deadlock
		}
		senders := inDegree[pn.ID]
		if plan.Cyclic {
			senders = 1 << 30 // closed by quiescence, not by senders
		}
		if !n.source {
			n.in = newInbox(max, 0, policy, senders)
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
			if n.in == nil || n.in.max == 0 {
				continue
			}
			n.in.maxBytes = opts.InboxBytes
			if b := n.pn.Runtime.InboxMaxBytes; b > 0 {
				n.in.maxBytes = b
			}
		}
	}
	for _, n := range x.nodes {
		ports := n.pn.Entry.OutPorts
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

// Stop asks for a graceful stop: sources stop reading, everything already
// emitted drains through the graph, then nodes close. Safe to call twice.
func (x *Executor) Stop() {
	if x.stopped.CompareAndSwap(false, true) {
		x.log.Info("stopping: sources stop, in-flight packets drain")
		for _, n := range x.nodes {
			if s, ok := n.inst.(plugin.Stopper); ok {
				s.Stopping()
			}
		}
	}
	x.srcCancel()
}

// Abort stops at once: inboxes are abandoned and node contexts cancelled.
func (x *Executor) Abort() {
	x.aborted.Store(true)
	x.srcCancel()
	x.hardStop()
	for _, n := range x.nodes {
		if n.in != nil {
			n.in.abort()
		}
	}
}

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
		n.in.setDiscard()
	}
}

// Run starts every node and blocks until the graph has drained and every
// node is closed (or Abort). ctx cancellation acts as Stop.
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
	wg.Wait()
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
		if err := s.Start(x.nodeCtx); err != nil {
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
				if err := x.call(func() error { return fl.Flush(ctx, em) }); err != nil {
					x.fail(n, "flush", err)
				}
			}
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
		var err error
		switch {
		case isBatch && !(isPort && hasPort(items)):
			batch = batch[:0]
			for _, it := range items {
				batch = append(batch, it.p)
			}
			err = x.call(func() error { return bp.ProcessBatch(ctx, batch, em) })
			if pe := (*plugin.PacketError)(nil); err != nil && errors.As(err, &pe) {
				n.errors.Add(int64(len(batch)))
				for _, pk := range batch {
					nack(pk, pe.Err)
				}
				n.warnPacket("batch failed", len(batch), pe.Err)
				err = nil
			}
		default:
			for _, it := range items {
				it := it
				if isPort && it.port != "" {
					err = x.call(func() error { return pp.ProcessPort(ctx, it.port, it.p, em) })
				} else if p != nil {
					err = x.call(func() error { return p.Process(ctx, it.p, em) })
				} else {
					err = x.call(func() error { return bp.ProcessBatch(ctx, []*packet.Packet{it.p}, em) })
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
			err = x.call(func() error { return fl.Flush(ctx, em) })
		}
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

// call runs one node call, turning a panic into an error.
func (x *Executor) call(f func() error) (err error) {
	defer func() {
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
