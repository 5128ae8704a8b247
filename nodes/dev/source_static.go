package dev

import (
	"context"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// StaticConfig is StaticSource's config.
type StaticConfig struct {
	Packets []*packet.Map `yaml:"packets" doc:"Packets to emit, in order. Each item may set kind (default raw), source_id (default the node id), payload (default null), ts (default now) and meta (default {})."`
}

// Validate checks the item keys, so that a typo fails before the run.
func (c *StaticConfig) Validate() error {
	for i, m := range c.Packets {
		for _, e := range m.Entries() {
			switch e.Key {
			case "kind", "source_id", "payload", "ts", "meta":
			default:
				return plugin.Errorf(itemPath(i, e.Key), "unknown packet key %q (known: kind, source_id, payload, ts, meta)", e.Key)
			}
		}
		if v, ok := m.Get("meta"); ok && v != nil {
			if _, isMap := v.(*packet.Map); !isMap {
				return plugin.Errorf(itemPath(i, "meta"), "meta must be a mapping")
			}
		}
	}
	return nil
}

func itemPath(i int, key string) string {
	return "packets[" + strconv.Itoa(i) + "]." + key
}

func registerStatic(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[StaticConfig]{
		Name: mod + "StaticSource",
		Role: plugin.RoleSource,
		Out:  []string{"*"},
		// upstream's dev_stream_template_v2.yaml sets the video sources'
		// keys on its StaticSource default; upstream ignores them.
		Ignored: []string{"source_id", "url", "path", "camera_index", "reconnect", "reconnect_backoff_sec", "reconnect_backoff_max_sec"},
		Summary: "Emit a fixed list of packets from the config, then end.",
		Description: "Each item becomes a new packet (fresh packet_id). `ts` is kept when it is a non-blank " +
			"string, otherwise the current UTC time. Payloads are shared, never copied: downstream nodes must not mutate them.",
		NewSource: func(c StaticConfig, env plugin.Env) (plugin.Source, error) {
			return &staticSource{cfg: c, id: env.NodeID}, nil
		},
	})
}

type staticSource struct {
	cfg StaticConfig
	id  string
}

func (s *staticSource) Run(ctx context.Context, out plugin.Emitter) error {
	for _, item := range s.cfg.Packets {
		if ctx.Err() != nil {
			return nil
		}
		kind := "raw"
		if v, ok := item.Get("kind"); ok && v != nil {
			kind = packet.PyStr(v)
		}
		src := s.id
		if v, ok := item.Get("source_id"); ok && v != nil {
			src = packet.PyStr(v)
		}
		payload, _ := item.Get("payload")
		ts := ""
		if v, ok := item.Get("ts"); ok {
			if str, isStr := v.(string); isStr && strings.TrimSpace(str) != "" {
				ts = str
			}
		}
		var meta *packet.Map
		if v, ok := item.Get("meta"); ok {
			meta, _ = v.(*packet.Map)
		}
		if err := out.Emit(packet.New(kind, src, payload, ts, meta)); err != nil {
			return nil
		}
	}
	return nil
}
