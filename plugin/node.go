// Package plugin is schnitzel's public node API: the interfaces a node
// implements, the Spec that declares it once (name, upstream aliases, role,
// packet kinds, typed config with defaults and docs, constructor), the
// Registry that holds specs, and the allowlist Policy.
//
// Third parties build custom binaries on this package and packet alone;
// nothing here exposes engine internals or other libraries' types.
//
// Life cycle of a node, driven by the runtime:
//
//	New(cfg, env)   cheap: check config, keep it; no goroutines, files or sockets
//	Start(ctx)      optional (Starter): acquire resources
//	Run / Process   sources emit until done or ctx ends; others handle packets
//	Close(ctx)      optional (Closer): flush and release; called once for every
//	                constructed node, even after a failed Start, in reverse
//	                topological order
package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Role is what a node does in a graph. A graph's `kind` chooses how the node
// is driven: kind source calls Run, any other kind calls Process.
type Role string

// Roles.
const (
	RoleSource Role = "source"
	RoleNode   Role = "node"
	RoleSink   Role = "sink"
)

// Emitter hands packets downstream. Emit blocks while the downstream inbox
// is full (under the default overflow policy block), which is how
// backpressure reaches sources. Emitted packets must not be changed after.
type Emitter interface {
	// Emit sends p on the default port: to every out-edge that names no
	// from_port (and, for nodes that declare no ports, to every out-edge).
	Emit(p *packet.Packet) error
	// EmitPort sends p to the out-edges whose from_port is port.
	EmitPort(port string, p *packet.Packet) error
}

// ErrStop is returned by Emit when the source must stop emitting: the run
// is shutting down or --max-events is spent. A source returns nil (or
// ErrStop) when it sees it. The packet that got ErrStop was not taken.
var ErrStop = errors.New("stop emitting")

// Source produces packets until its input ends or ctx is cancelled. A source
// checks ctx before reading its next item, so that a stop never reads an item
// it then throws away.
type Source interface {
	Run(ctx context.Context, out Emitter) error
}

// Processor handles one packet and emits zero or more. Sinks are Processors
// that emit only when they forward.
type Processor interface {
	Process(ctx context.Context, p *packet.Packet, out Emitter) error
}

// BatchProcessor is implemented by nodes that gain from seeing the packets
// the runtime already holds as one batch (a queue sink commits a batch in
// one transaction). The runtime prefers it over Process.
type BatchProcessor interface {
	ProcessBatch(ctx context.Context, batch []*packet.Packet, out Emitter) error
}

// PortProcessor is implemented by nodes that care which to_port a packet
// arrived on. The runtime prefers it over Process when the edge names one.
type PortProcessor interface {
	ProcessPort(ctx context.Context, port string, p *packet.Packet, out Emitter) error
}

// PortConfig is implemented by a decoded config whose output ports depend
// on the config (a Switch's cases): for that node, OutPorts replaces
// Spec.OutPorts, where the validator checks edges' from_port and the
// runtime routes EmitPort.
type PortConfig interface {
	OutPorts() []string
}

// Starter is implemented by nodes that hold resources (files, sockets,
// subprocesses). Start runs once, before any Run or Process.
type Starter interface {
	Start(ctx context.Context) error
}

// Closer is implemented by nodes that flush or release. Close must be safe to
// call twice and must return by ctx's deadline.
type Closer interface {
	Close(ctx context.Context) error
}

// Stopper is implemented by nodes that wait on their own (retry backoff,
// polling). Stopping is called once, from another goroutine, when a graceful
// stop begins: the node should stop waiting, finish or give back (nack) what
// it holds, so that the drain completes within a service's stop timeout. It
// must not block.
type Stopper interface {
	Stopping()
}

// Flusher is implemented by nodes that keep working on packets after
// Process or ProcessBatch returned (an HTTP sink with requests in flight).
// For such a node the runtime's Emitter is safe to call from any goroutine
// and hands each packet downstream at once, so a packet finished in the
// background reaches the next node without waiting for the next input.
// Flush is called on the node's goroutine when its input has ended (and, in
// a cyclic graph, after every batch): it returns once every packet the
// node took is emitted, nacked or given up, or promptly when ctx is
// cancelled (what is unfinished then is neither emitted nor nacked). The
// node must not emit after Flush returns, nor after it returned an error
// that ends the run from Process or ProcessBatch.
type Flusher interface {
	Flush(ctx context.Context, out Emitter) error
}

// Downstream is implemented by nodes that can spare work when they know the
// node right after them: a video source that does not ship frames the
// sampler behind it would drop anyway. After building the graph and before
// Start, the runtime calls Downstream once with the instance of the next
// node, when this node's output has exactly one edge, the next node has no
// other input, the graph has no cycle and no --max-events budget counts
// emits. The node type-asserts next against interfaces it understands and
// ignores anything else. Whatever it does, its output must stay a superset
// of what next keeps: next still receives and filters every packet sent,
// so the graph's results do not change, only the work behind them.
//
// The report must not change either: for every n packets it did not
// produce because next would have dropped them, the node calls skipped(n)
// (from any goroutine, before it emits the packet that follows them), and
// the runtime counts them as produced by this node and consumed by next, as
// if they had travelled. Telling next (so its own drop counters match) is
// up to the two nodes.
type Downstream interface {
	Downstream(next any, skipped func(n int64))
}

// LargePackets is implemented by nodes whose packets hold large in-process
// values (packet.Sized: decoded video frames). A graph with such a node has
// every inbox bounded by the bytes of those values as well as by packet
// count (default 32 MiB, --inbox-max-bytes, __runtime__.inbox_max_bytes),
// so that a slow node after a fast source holds a few dozen frames, not a
// thousand. The batch a node is working on counts too, until it asks for
// the next. An inbox always takes a packet when it is empty, so one value
// larger than the bound still passes.
type LargePackets interface{ LargePackets() }

// Metric is the value of a node's own counter or gauge, reported as
// node.<id>.<Name>. What it means (kind, help, whether it counts losses)
// is declared once, in Spec.Metrics.
type Metric struct {
	Name  string
	Value int64
}

// Metrics is implemented by nodes with their own counters. It is called from
// another goroutine than Run/Process (for Prometheus scrapes and the report),
// so counters must be atomics. It returns the metrics Spec.Metrics
// declares, every time, in that order (plugintest.Conformance checks).
type Metrics interface {
	Metrics() []Metric
}

// PacketError wraps an error that ends one packet's journey without ending
// the run: the runtime counts it as a failure of the node, nacks the packet
// and marks the run degraded. Any other error from Process ends the run.
type PacketError struct{ Err error }

func (e *PacketError) Error() string { return e.Err.Error() }
func (e *PacketError) Unwrap() error { return e.Err }

// DropPacket returns a PacketError for err.
func DropPacket(err error) error { return &PacketError{Err: err} }

// FieldError is a config problem at a key path such as "packets[2].kind".
// The graph loader turns the path into a YAML line.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return fmt.Sprintf("config.%s: %s", e.Path, e.Msg)
}

// Errorf returns a FieldError at path.
func Errorf(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}
