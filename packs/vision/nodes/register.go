// Package nodes holds the vision pack's processing nodes: the frame
// sampler, the mock detector, the protocol v0.2 event builder, the zone and
// dedup policies and the event snapshot writer. Their logic lives in the
// leaf packages event, zones, dedup and snapshot; this package adapts it
// to the plugin API under upstream's plugin strings (seed and HEAD).
package nodes

import (
	"fmt"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Upstream module paths: the seed's, HEAD's pack package, and HEAD's
// per-file modules (importable too, so graphs may name them).
const (
	seedNodes = "schnitzel_stream.nodes."
	headPack  = "schnitzel_stream.packs.vision.nodes:"
	headNodes = "schnitzel_stream.packs.vision.nodes."
)

// names returns the seed name and the HEAD aliases of class in module mod.
func names(mod, class string) (string, []string) {
	return seedNodes + mod + ":" + class, []string{headPack + class, headNodes + mod + ":" + class}
}

// Register adds the vision processing nodes to r.
func Register(r *plugin.Registry) {
	registerSampler(r)
	registerMockDetector(r)
	registerEventBuilder(r)
	registerZonePolicy(r)
	registerDedupPolicy(r)
	registerSnapshot(r)
	registerFrigate(r)
	registerModelAdapter(r) // ModelAdapterDetectorNode, YoloV8DetectorNode, OpenCvBboxDisplaySink
}

// frameIdx returns payload.frame_idx of a frame packet, or an error that
// drops the packet (upstream raised TypeError and ended the run).
func frameIdx(p *packet.Packet) (*packet.Map, int64, error) {
	m, ok := p.Payload.(*packet.Map)
	if !ok {
		return nil, 0, plugin.DropPacket(fmt.Errorf("expected frame payload as a mapping, got %T", p.Payload))
	}
	v, _ := m.Get("frame_idx")
	idx, ok := v.(int64)
	if !ok {
		return nil, 0, plugin.DropPacket(fmt.Errorf("expected payload.frame_idx as int, got %s", packet.PyStr(v)))
	}
	return m, idx, nil
}

// eventPayload returns the mapping payload of an event packet.
func eventPayload(p *packet.Packet) (*packet.Map, error) {
	m, ok := p.Payload.(*packet.Map)
	if !ok {
		return nil, plugin.DropPacket(fmt.Errorf("expected event payload as a mapping, got %T", p.Payload))
	}
	return m, nil
}
