// Package serve is the control plane's core: a Supervisor runs many graphs
// in one process, each its own runtime, restarts the ones that fail with
// bounded backoff, hot-reloads changed files, and keeps the desired state
// (which graphs exist, which are stopped) on disk. The HTTP API
// (internal/serve/api) and the CLI (internal/cli/servecmd) are built on it.
package serve

import (
	"errors"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
)

// State is what a supervised graph is doing now.
type State string

const (
	StateStarting State = "starting" // building nodes
	StateRunning  State = "running"
	StateStopped  State = "stopped" // desired stopped, or ran out of input
	StateFailed   State = "failed"  // ended with an error and will not be restarted (invalid file, build error)
	StateBackoff  State = "backoff" // ended with an error; restarts at BackoffUntil
)

// GraphStatus is one graph as GET /api/v1/graphs lists it.
type GraphStatus struct {
	Name         string     `json:"name"`
	State        State      `json:"state"`
	Desired      string     `json:"desired"`          // "running" or "stopped": what the state file says
	Status       string     `json:"status,omitempty"` // last run report's status (ok, error, stopped, ...)
	Since        time.Time  `json:"since"`            // when State last changed
	Restarts     int        `json:"restarts"`         // automatic restarts after failures since the last start/apply
	BackoffUntil *time.Time `json:"backoff_until,omitempty"`
	InPerSec     float64    `json:"in_per_sec"`  // packets/s consumed by the sinks (last few seconds)
	OutPerSec    float64    `json:"out_per_sec"` // packets/s emitted by the sources
	Dropped      int64      `json:"dropped"`     // inbox drops, all nodes, this run
	Errors       int64      `json:"errors"`      // failed packets, all nodes, this run
	LastError    string     `json:"last_error,omitempty"`
	// ReloadError is the last refused new version of the file (invalid
	// YAML or graph): the previous version keeps running.
	ReloadError string `json:"reload_error,omitempty"`
	File        string `json:"file"`             // path of the graph file in the graphs dir
	Origin      string `json:"origin,omitempty"` // "file", "api", "fleet", "preset"
	Generation  int64  `json:"generation"`       // bumps on every (re)load of a new version
}

// NodeStatus is one node of a running graph, with rates (schnitzel top,
// the console's topology).
type NodeStatus struct {
	ID           string  `json:"id"`
	Plugin       string  `json:"plugin"`
	Kind         string  `json:"kind"` // source, node, sink
	Consumed     int64   `json:"consumed"`
	Produced     int64   `json:"produced"`
	ConsumedRate float64 `json:"consumed_per_sec"`
	ProducedRate float64 `json:"produced_per_sec"`
	InboxDepth   int     `json:"inbox_depth"`
	InboxMax     int     `json:"inbox_max"`
	Dropped      int64   `json:"dropped"`
	Errors       int64   `json:"errors"`
	Failed       bool    `json:"failed"`
	LastError    string  `json:"last_error,omitempty"`
}

// Edge is one edge of the graph, by node id and port.
type Edge struct {
	From     string `json:"from"`
	FromPort string `json:"from_port,omitempty"`
	To       string `json:"to"`
	ToPort   string `json:"to_port,omitempty"`
}

// GraphDetail is GET /api/v1/graphs/{name}: the status, the file as
// written (never with ${oc.env:...} resolved), the topology and the live
// report.
type GraphDetail struct {
	GraphStatus
	YAML   string            `json:"yaml"`
	Nodes  []NodeStatus      `json:"nodes"`
	Edges  []Edge            `json:"edges"`
	Report *engine.Report    `json:"-"`             // live while running, else the last run's; nil before any run
	Env    map[string]string `json:"env,omitempty"` // per-graph variables (ApplyOptions.Env)
}

// ApplyOptions go with a new graph version.
type ApplyOptions struct {
	// Env are variables for ${oc.env:NAME} in this graph only (fleet
	// streams: SS_CAMERA_ID, ...); persisted in the state file.
	Env    map[string]string
	Origin string // recorded in GraphStatus.Origin; "" means "api"
	Actor  string // for the audit line
	// Stopped applies the file without starting it.
	Stopped bool
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	Created   bool         `json:"created"`
	Reloaded  bool         `json:"reloaded"`
	Unchanged bool         `json:"unchanged"` // same bytes and env as the running version: nothing done
	Diags     engine.Diags `json:"warnings,omitempty"`
	// ReloadTime is stop-of-the-old to start-of-the-new (0 when created).
	ReloadTime time.Duration `json:"reload_ns,omitempty"`
}

// TapStream is a live view of the packets one node emits on a port (a
// sink's: the packets it consumes). It never slows the graph: when the
// reader is behind, packets are dropped and counted.
type TapStream interface {
	// Events yields each packet as its JSON line (no trailing newline). It
	// is closed when the graph stops or reloads, or on Close.
	Events() <-chan []byte
	// Dropped counts packets not delivered because the reader was behind.
	Dropped() int64
	Close()
}

// Errors the Supervisor returns; the API maps them to HTTP statuses.
var (
	ErrNotFound = errors.New("no such graph")         // 404
	ErrBadName  = errors.New("invalid graph name")    // 400
	ErrNoNode   = errors.New("no such node")          // 404 (tap)
	ErrTooMany  = errors.New("too many tap streams")  // 429
	ErrReadOnly = errors.New("graph is not writable") // 409: e.g. a v1 job file
)

// An *engine.InvalidError from Apply or Validate is a 422 with its Diags.

// QueueRef is one node of a graph that uses a durable SQLite queue file
// (plugin *durable_sqlite*): the console's Queues page, and the only
// paths the queue routes of the API open.
type QueueRef struct {
	Path   string `json:"path"` // absolute (relative config paths resolve against serve's working directory)
	Graph  string `json:"graph"`
	Node   string `json:"node"`
	Plugin string `json:"plugin"`
}
