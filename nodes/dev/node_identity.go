package dev

import (
	"context"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Empty is the config of nodes that take none.
type Empty struct{}

func registerIdentity(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[Empty]{
		Name:    mod + "Identity",
		Role:    plugin.RoleNode,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "Re-emit every packet unchanged (the same packet).",
		Description: "Used as kind sink it is a discarding sink: its output goes nowhere, " +
			"which makes it the sink of the throughput benchmark in both schnitzel and the Python project.",
		NewProcessor: func(Empty, plugin.Env) (plugin.Processor, error) { return identity{}, nil },
	})
}

type identity struct{}

func (identity) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	return out.Emit(p)
}

func (identity) ProcessBatch(_ context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	for _, p := range batch {
		if err := out.Emit(p); err != nil {
			return err
		}
	}
	return nil
}
