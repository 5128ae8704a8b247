// Package all registers every first-party node and job. A custom binary
// starts from Registry() and adds its own nodes (examples/custom-binary),
// or builds a registry from scratch with the Register functions it wants.
package all

import (
	"github.com/schnitzel-stream/schnitzel/nodes/blob"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	execnodes "github.com/schnitzel-stream/schnitzel/nodes/exec"
	"github.com/schnitzel-stream/schnitzel/nodes/httpin"
	ionodes "github.com/schnitzel-stream/schnitzel/nodes/io"
	"github.com/schnitzel-stream/schnitzel/nodes/lines"
	"github.com/schnitzel-stream/schnitzel/nodes/mapping"
	"github.com/schnitzel-stream/schnitzel/nodes/mqtt"
	natsnodes "github.com/schnitzel-stream/schnitzel/nodes/nats"
	"github.com/schnitzel-stream/schnitzel/packs/vision"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Register adds every built-in node and job to r.
func Register(r *plugin.Registry) {
	blob.Register(r)
	dev.Register(r)
	durable.Register(r)
	execnodes.Register(r)
	httpin.Register(r)
	ionodes.Register(r)
	lines.Register(r)
	mapping.Register(r)
	natsnodes.Register(r)
	mqtt.Register(r)
	vision.Register(r)
}

// Registry returns a new registry with every built-in node and job.
func Registry() *plugin.Registry {
	r := plugin.NewRegistry()
	Register(r)
	return r
}
