// Package bundle registers every first-party node and job into one
// registry. A custom binary is a different import list here.
package bundle

import (
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/nodes/durable"
	ionodes "github.com/schnitzel-stream/schnitzel/nodes/io"
	"github.com/schnitzel-stream/schnitzel/packs/vision/legacy"
	visionnodes "github.com/schnitzel-stream/schnitzel/packs/vision/nodes"
	"github.com/schnitzel-stream/schnitzel/packs/vision/video"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Registry returns a registry with every built-in node and job.
func Registry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	durable.Register(r)
	ionodes.Register(r)
	video.Register(r)
	visionnodes.Register(r)
	legacy.Register(r)
	return r
}
