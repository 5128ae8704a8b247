package dev

import (
	"context"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// BurstConfig is BurstNode's config.
type BurstConfig struct {
	Count   int64  `yaml:"count" doc:"Packets emitted per input packet; negative counts as 0."`
	MetaKey string `yaml:"meta_key" doc:"Meta key that receives the packet's position in its burst (0..count-1)."`
}

func registerBurst(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[BurstConfig]{
		Name:     mod + "BurstNode",
		Role:     plugin.RoleNode,
		In:       []string{"*"},
		Out:      []string{"*"},
		Summary:  "Emit count new packets per input (new packet_id, same kind/source_id/ts/payload, meta[meta_key] = i).",
		Defaults: BurstConfig{Count: 1, MetaKey: "burst_seq"},
		NewProcessor: func(c BurstConfig, _ plugin.Env) (plugin.Processor, error) {
			return &burst{count: max(0, c.Count), key: c.MetaKey}, nil
		},
	})
}

type burst struct {
	count int64
	key   string
	slab  packet.Slab // only the node's goroutine derives packets
}

func (b *burst) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	for i := int64(0); i < b.count; i++ {
		q := b.slab.DeriveSeq(p, b.key, i)
		if err := out.Emit(q); err != nil {
			return err
		}
	}
	return nil
}
