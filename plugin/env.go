package plugin

import (
	"io"
	"log/slog"
	"os"
)

// Env is what a constructor gets besides its config.
type Env struct {
	NodeID string       // the graph node id
	Kind   string       // the graph kind: source, node, sink, delay, initial
	Plugin string       // the plugin string as written in the graph
	Logger *slog.Logger // tagged with node and plugin; never nil
	Stdout io.Writer    // where print-style sinks write; never nil
	Stdin  io.Reader    // what stdin sources read; never nil (os.Stdin by default)
	// GraphDir is the directory of the graph file. Relative paths in
	// configs resolve against the working directory (as upstream), not
	// this; it is here for nodes that document otherwise.
	GraphDir string
	// CommitDownstream is true when a node reachable downstream of this
	// one commits packets durably and calls packet.Ack (Spec.Commits). A
	// source that can defer its acknowledgement sets p.Ack and acks when
	// it is called; without one downstream nothing would ever call it,
	// so such a source acknowledges on receipt instead.
	CommitDownstream bool

	counters *Counters // the node's declared metrics (Counters), set by Entry.Build
}

// withDefaults fills the nil fields so nodes never check for nil.
func (e Env) withDefaults() Env {
	if e.Logger == nil {
		e.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	return e
}
