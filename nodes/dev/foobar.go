package dev

import (
	"context"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// FooSource and BarSink exist for the kind-mismatch check: FooSource emits
// kind foo and BarSink accepts only kind bar.
func registerFooBar(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[Empty]{
		Name:      mod + "FooSource",
		Role:      plugin.RoleSource,
		Out:       []string{"foo"},
		Summary:   "Test plugin: emit one packet of kind foo (source_id dev, payload {}).",
		NewSource: func(Empty, plugin.Env) (plugin.Source, error) { return fooSource{}, nil },
	})
	plugin.Register(r, plugin.Spec[Empty]{
		Name:         mod + "BarSink",
		Role:         plugin.RoleSink,
		In:           []string{"bar"},
		Summary:      "Test plugin: accept packets of kind bar and discard them.",
		NewProcessor: func(Empty, plugin.Env) (plugin.Processor, error) { return barSink{}, nil },
	})
}

type fooSource struct{}

func (fooSource) Run(ctx context.Context, out plugin.Emitter) error {
	if ctx.Err() != nil {
		return nil
	}
	_ = out.Emit(packet.New("foo", "dev", packet.NewMap(0), "", nil))
	return nil
}

type barSink struct{}

func (barSink) Process(context.Context, *packet.Packet, plugin.Emitter) error { return nil }
