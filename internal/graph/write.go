package graph

import (
	"bytes"
	"fmt"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// WriteV2 writes g (a loaded v2 graph, interpolations resolved) as a v2
// graph file that loads back to the same nodes and edges: what
// `schnitzel graph split` writes for each part. Values are written as JSON
// flow scalars (valid YAML); a node's __runtime__ and transport go back
// into its config.
func WriteV2(g *Graph, header string) ([]byte, error) {
	var b bytes.Buffer
	for _, line := range bytes.Split([]byte(header), []byte("\n")) {
		if len(line) > 0 {
			fmt.Fprintf(&b, "# %s\n", line)
		}
	}
	b.WriteString("version: 2\n")
	enc := packet.NewJSONEncoder(packet.JSONOptions{Strict: true})
	val := func(path string, v any) ([]byte, error) {
		out, err := enc.Append(nil, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return out, nil
	}
	if g.Config != nil && g.Config.Len() > 0 {
		c, err := val("config", g.Config)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "config: %s\n", c)
	}
	b.WriteString("nodes:\n")
	for _, n := range g.Nodes {
		cfg := n.Config.Clone(2)
		if rt := runtimeMap(n.Runtime); rt != nil {
			cfg.Set("__runtime__", rt)
		}
		if n.Transport != "" {
			cfg.Set("transport", n.Transport)
		}
		c, err := val(fmt.Sprintf("node %q config", n.ID), cfg)
		if err != nil {
			return nil, err
		}
		id, _ := val("id", n.ID)
		pl, _ := val("plugin", n.Plugin)
		kind, _ := val("kind", n.Kind)
		fmt.Fprintf(&b, "  - id: %s\n    kind: %s\n    plugin: %s\n    config: %s\n", id, kind, pl, c)
	}
	if len(g.Edges) == 0 {
		b.WriteString("edges: []\n")
		return b.Bytes(), nil
	}
	b.WriteString("edges:\n")
	for _, e := range g.Edges {
		m := packet.MapOf("from", e.From, "to", e.To)
		if e.FromPort != "" {
			m.Set("from_port", e.FromPort)
		}
		if e.ToPort != "" {
			m.Set("to_port", e.ToPort)
		}
		if e.Transport == TransportInproc {
			m.Set("transport", e.Transport)
		}
		c, err := val("edge", m)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "  - %s\n", c)
	}
	return b.Bytes(), nil
}

func runtimeMap(r RuntimeConfig) *packet.Map {
	if r == (RuntimeConfig{}) {
		return nil
	}
	m := packet.NewMap(3)
	if r.InboxMax > 0 {
		m.Set("inbox_max", int64(r.InboxMax))
	}
	if r.InboxMaxBytes > 0 {
		m.Set("inbox_max_bytes", r.InboxMaxBytes)
	}
	if r.Overflow != "" {
		m.Set("inbox_overflow", r.Overflow)
	}
	return m
}
