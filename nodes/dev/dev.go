// Package dev holds the seed's development nodes (StaticSource, Identity,
// BurstNode, PrintSink, FooSource, BarSink), TickerSource for soak tests
// and heartbeats, and FaultNode, which fails on purpose (chaos and
// supervision tests).
package dev

import "github.com/schnitzel-stream/schnitzel/plugin"

const mod = "schnitzel_stream.nodes.dev:"

// Register adds the dev nodes to r.
func Register(r *plugin.Registry) {
	registerStatic(r)
	registerTicker(r)
	registerIdentity(r)
	registerBurst(r)
	registerPrint(r)
	registerFooBar(r)
	registerFault(r)
}
