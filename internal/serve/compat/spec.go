package compat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// specNode and specEdge are upstream's normal form of an inline spec
// (ops/graph_editor.py normalized_spec_dict), in its key order.
type specNode struct {
	ID     string         `json:"id"`
	Kind   string         `json:"kind"`
	Plugin string         `json:"plugin"`
	Config map[string]any `json:"config"`
}

type specEdge struct {
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SrcPort string `json:"src_port,omitempty"`
	DstPort string `json:"dst_port,omitempty"`
}

type spec struct {
	Version int            `json:"version"`
	Nodes   []specNode     `json:"nodes"`
	Edges   []specEdge     `json:"edges"`
	Config  map[string]any `json:"config"`
}

// usageError is a spec that is not even the shape upstream's editor
// accepts (upstream: GraphEditorUsageError or a pydantic 422).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// decodeObject decodes JSON keeping integers as integers.
func decodeObject(raw json.RawMessage, what string) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, usagef("%s is required", what)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, usagef("%s: %v", what, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, usagef("%s must be a mapping", what)
	}
	return numbers(m).(map[string]any), nil
}

// numbers turns json.Number into int64 or float64, so that YAML gets
// 5, not "5".
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	}
	return v
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(x)
	default:
		return strings.TrimSpace(fmt.Sprint(x))
	}
}

func first(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			return v
		}
	}
	return nil
}

// parseSpec applies upstream's parse_graph_spec_input rules (version 2,
// nodes with id/node_id and plugin, kind defaulting to node, edges with
// src/dst or from/to and optional ports) and returns the graph as YAML
// for the engine's loader.
func parseSpec(m map[string]any) (*spec, error) {
	s := &spec{Version: 2, Nodes: []specNode{}, Edges: []specEdge{}, Config: map[string]any{}}
	if v, ok := m["version"]; ok && v != nil {
		n, isInt := v.(int64)
		if !isInt {
			return nil, usagef("spec.version must be int")
		}
		if n != 2 {
			return nil, usagef("spec.version must be 2")
		}
	}
	nodes, ok := orEmpty(m["nodes"]).([]any)
	if !ok {
		return nil, usagef("spec.nodes must be a list")
	}
	edges, ok := orEmpty(m["edges"]).([]any)
	if !ok {
		return nil, usagef("spec.edges must be a list")
	}
	if c := m["config"]; c != nil {
		cm, ok := c.(map[string]any)
		if !ok {
			return nil, usagef("spec.config must be a mapping")
		}
		s.Config = cm
	}
	for i, raw := range nodes {
		n, ok := raw.(map[string]any)
		if !ok {
			return nil, usagef("spec.nodes[%d] must be a mapping", i)
		}
		node := specNode{ID: text(first(n, "id", "node_id")), Plugin: text(n["plugin"]), Kind: text(n["kind"]), Config: map[string]any{}}
		if node.Kind == "" {
			node.Kind = "node"
		}
		if node.ID == "" {
			return nil, usagef("spec.nodes[%d].id is required", i)
		}
		if node.Plugin == "" {
			return nil, usagef("spec.nodes[%d].plugin is required", i)
		}
		if c := n["config"]; c != nil {
			cm, ok := c.(map[string]any)
			if !ok {
				return nil, usagef("spec.nodes[%d].config must be a mapping", i)
			}
			node.Config = cm
		}
		s.Nodes = append(s.Nodes, node)
	}
	for i, raw := range edges {
		e, ok := raw.(map[string]any)
		if !ok {
			return nil, usagef("spec.edges[%d] must be a mapping", i)
		}
		edge := specEdge{Src: text(first(e, "src", "from")), Dst: text(first(e, "dst", "to")),
			SrcPort: text(first(e, "src_port", "from_port")), DstPort: text(first(e, "dst_port", "to_port"))}
		if edge.Src == "" || edge.Dst == "" {
			return nil, usagef("spec.edges[%d] requires src/dst", i)
		}
		s.Edges = append(s.Edges, edge)
	}
	return s, nil
}

func orEmpty(v any) any {
	if v == nil {
		return []any{}
	}
	return v
}

// render gives the loader the spec as indented JSON, which is YAML: every
// string stays quoted (no YAML 1.1 surprises such as "on" becoming true),
// and one key per line keeps the diagnostics' lines useful.
func (s *spec) render() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("render spec: %w", err)
	}
	return buf.Bytes(), nil
}
