// Package vision is the vision/CCTV pack: frame sources (video, decoding
// through the ffmpeg library package), the processing nodes (nodes:
// sampler, detectors, events, zones, dedup, snapshots) and upstream's v1
// LegacyAIPipelineJob (legacy). Register adds all of it; a custom binary
// that wants the pack calls only this.
package vision

import (
	"github.com/schnitzel-stream/schnitzel/packs/vision/legacy"
	"github.com/schnitzel-stream/schnitzel/packs/vision/nodes"
	"github.com/schnitzel-stream/schnitzel/packs/vision/video"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Register adds every node and job of the vision pack to r.
func Register(r *plugin.Registry) {
	video.Register(r)
	nodes.Register(r)
	legacy.Register(r)
}
