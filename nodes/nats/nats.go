// Package natsnodes holds the NATS nodes: JetStreamSink and
// JetStreamSource (durable, at least once: PubAck before a packet moves
// on, acks after a downstream commit) and NatsSink and NatsSource (core
// NATS, at most once). All four share ConnConfig: reconnect forever with
// jitter, an unreachable server at start retried, refused credentials an
// error. docs/connectors-nats.md has the keys and the ack semantics.
package natsnodes

import "github.com/schnitzel-stream/schnitzel/plugin"

const mod = "schnitzel_stream.nodes.nats:"

// Register adds the NATS nodes to r.
func Register(r *plugin.Registry) {
	registerJSSink(r)
	registerJSSource(r)
	registerCore(r)
}
