package graph

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// SchemaID is the $id of the generated schema.
const SchemaID = "https://schnitzel-stream.github.io/schema/graph.json"

// Schema returns a JSON Schema (draft 2020-12) for graph files, generated
// from the registry: the file's structure with the same key sets the loader
// accepts, and per plugin (each name and alias) its config keys, types,
// enums, defaults and docs, chosen with if/then on `plugin`. Editors use it
// through yaml-language-server; it is a help, not the validator: `schnitzel
// validate` stays the authority (kinds, edges, ports, ranges, allowlist).
//
// Where the loader only warns (an unknown config key, for upstream's
// sake), the schema is strict, so an editor underlines the typo; keys
// upstream's nodes accept and ignore (Spec.Ignored) are allowed.
func Schema(reg *plugin.Registry) ([]byte, error) {
	defs := map[string]any{
		"interpolated": map[string]any{
			"type": "string", "pattern": `\$\{`,
			"description": "An interpolation such as ${oc.env:NAME,default}, resolved when the graph loads.",
		},
		"runtime": map[string]any{
			"type":        "object",
			"description": "Per-node runtime settings (inbox bound and overflow policy).",
			"properties": map[string]any{
				"inbox_max":       scalar("integer", "Packets the node's inbox holds before the overflow policy applies."),
				"inbox_max_bytes": scalar("integer", "Bytes of large values (frames) the inbox holds."),
				"inbox_overflow":  enumOf([]string{OverflowBlock, OverflowDropNew, OverflowDropOldest, OverflowError}, "What a full inbox does."),
			},
			"additionalProperties": false,
		},
	}
	var thens []any
	entries := reg.Entries()
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	var names []string
	for _, e := range entries {
		def := "plugin:" + e.Name
		defs[def] = configSchema(e)
		for _, n := range append([]string{e.Name}, e.Aliases...) {
			names = append(names, n)
			thens = append(thens, map[string]any{
				"if": map[string]any{
					"properties": map[string]any{"plugin": map[string]any{"const": n}},
					"required":   []string{"plugin"},
				},
				"then": map[string]any{
					"properties": map[string]any{"config": map[string]any{"$ref": "#/$defs/" + def}},
				},
			})
		}
	}
	defs["node"] = map[string]any{
		"type":     "object",
		"required": []string{"plugin"},
		"properties": map[string]any{
			"id":      map[string]any{"type": "string", "description": "Unique node id, used by edges."},
			"node_id": map[string]any{"type": "string", "description": "Upstream's spelling of id."},
			"kind":    enumOf([]string{KindSource, KindNode, KindSink, KindDelay, KindInitial}, "How the node is driven: source runs, the others process."),
			"plugin": map[string]any{
				"type":        "string",
				"description": "module.path:Name of a registered node (schnitzel plugins lists them).",
				"examples":    names,
			},
			"config": map[string]any{"type": "object"},
		},
		"patternProperties":    map[string]any{"^x-": true},
		"additionalProperties": false,
		"allOf":                thens,
	}
	edgeProps := map[string]any{}
	for _, k := range edgeKeySet {
		edgeProps[k] = map[string]any{"type": "string"}
	}
	edgeProps["transport"] = enumOf([]string{TransportInproc, TransportNATS}, "inproc (default): in the process. nats: the graph is cut here; the halves run in different processes over a JetStream stream.")
	edgeProps["subject"] = map[string]any{"type": "string", "description": "transport: nats: the literal subject (default cut.<graph file name>.<from>_<to>)."}
	edgeProps["stream"] = map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "transport: nats: the JetStream stream, created if missing (default cut_<graph file name>_<from>_<to>)."}
	edgeProps["durable"] = map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "transport: nats: the receiving side's durable consumer (default cut_<from>_<to>)."}
	edgeProps["url"] = map[string]any{"type": "string", "description": "transport: nats: server URL or comma list (default $NATS_URL, else " + DefaultNATSURL + ")."}
	edgeProps["connection"] = map[string]any{"type": "object", "description": "transport: nats: connection keys for both sides (creds_file, nkey_file, token, user, password, tls_ca_file, tls_cert_file, tls_key_file, ...), as the JetStream nodes take them."}
	edgeProps["sink_config"] = map[string]any{"type": "object", "description": "transport: nats: more JetStreamSink keys for the sending side (max_age_sec, max_bytes, replicas, ...)."}
	edgeProps["source_config"] = map[string]any{"type": "object", "description": "transport: nats: more JetStreamSource keys for the receiving side (ack_wait_sec, max_ack_pending, max_deliver, ...)."}
	defs["edge"] = map[string]any{
		"type":                 "object",
		"properties":           edgeProps,
		"patternProperties":    map[string]any{"^x-": true},
		"additionalProperties": false,
	}
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         SchemaID,
		"title":       "schnitzel graph file",
		"description": "A v2 node graph (nodes, edges) or a v1 job graph (job, config). Generated by `schnitzel graph schema`.",
		"type":        "object",
		"required":    []string{"version"},
		"properties": map[string]any{
			"version": map[string]any{"enum": []any{1, 2, "1", "2"}},
		},
		"if": map[string]any{"properties": map[string]any{"version": map[string]any{"enum": []any{1, "1"}}}},
		"then": map[string]any{
			"required": []string{"job"},
			"properties": map[string]any{
				"version": true,
				"job":     map[string]any{"type": "string", "description": "module.path:Name of a job."},
				"config":  map[string]any{"type": "object"},
			},
			"patternProperties":    map[string]any{"^x-": true},
			"additionalProperties": false,
		},
		"else": map[string]any{
			"required": []string{"nodes"},
			"properties": map[string]any{
				"version": true,
				"nodes":   map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/node"}},
				"edges":   map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/edge"}},
				"config":  map[string]any{"type": "object"},
			},
			"patternProperties":    map[string]any{"^x-": true},
			"additionalProperties": false,
		},
		"$defs": defs,
	}
	return json.MarshalIndent(doc, "", "  ")
}

// configSchema describes one plugin's config: dotted keys become nested
// objects, and __runtime__ and transport are allowed on every node.
func configSchema(e *plugin.Entry) map[string]any {
	root := objectNode(e.Summary)
	props := root["properties"].(map[string]any)
	props["__runtime__"] = map[string]any{"$ref": "#/$defs/runtime"}
	props["transport"] = map[string]any{"type": "string", "description": "Reserved by upstream for the edge transport."}
	for _, k := range e.Ignored {
		props[k] = map[string]any{"description": "Accepted for upstream's graphs and ignored."}
	}
	var required []string
	for _, f := range e.Fields {
		parts := strings.Split(f.Key, ".")
		obj := root
		for _, p := range parts[:len(parts)-1] {
			pp := obj["properties"].(map[string]any)
			next, ok := pp[p].(map[string]any)
			if !ok || next["properties"] == nil {
				next = objectNode("")
				pp[p] = next
			}
			obj = next
		}
		obj["properties"].(map[string]any)[parts[len(parts)-1]] = fieldSchema(f)
		if f.Required && len(parts) == 1 {
			required = append(required, f.Key)
		}
	}
	if len(required) > 0 {
		root["required"] = required
	}
	return root
}

func objectNode(desc string) map[string]any {
	o := map[string]any{"type": "object", "properties": map[string]any{}, "additionalProperties": false}
	if desc != "" {
		o["description"] = desc
	}
	return o
}

func fieldSchema(f plugin.Field) map[string]any {
	s := typeSchema(f.Type)
	if len(f.Enum) > 0 {
		s = enumOf(f.Enum, "")
		if f.Type == "int" {
			// an int enum (qos: 0|1|2) is written as a number
			var vals []any
			for _, e := range f.Enum {
				if n, err := strconv.ParseInt(e, 10, 64); err == nil {
					vals = append(vals, n)
				}
				vals = append(vals, e)
			}
			s = map[string]any{"anyOf": []any{map[string]any{"enum": vals}, map[string]any{"$ref": "#/$defs/interpolated"}}}
		}
	}
	if f.Doc != "" {
		s["description"] = f.Doc
	}
	if f.Default != nil {
		if _, err := json.Marshal(f.Default); err == nil {
			s["default"] = f.Default
		}
	}
	if f.Deprecated != "" {
		s["deprecated"] = true
	}
	if f.Secret {
		s["writeOnly"] = true
	}
	if len(f.Examples) > 0 {
		s["examples"] = f.Examples
	}
	return s
}

// typeSchema maps plugin.Field types (kindName in plugin/decode.go) to
// JSON Schema. Non-string scalars may also be interpolations.
func typeSchema(t string) map[string]any {
	switch {
	case t == "string":
		return map[string]any{"type": "string"}
	case t == "bool":
		return scalar("boolean", "")
	case t == "int":
		return scalar("integer", "")
	case t == "float":
		return scalar("number", "")
	case t == "seconds":
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "number"},
			map[string]any{"type": "string", "description": "A Go duration such as 250ms, or an interpolation."},
		}}
	case t == "object":
		return map[string]any{"type": "object"}
	case strings.HasPrefix(t, "list of "):
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "array", "items": typeSchema(strings.TrimPrefix(t, "list of "))},
			map[string]any{"$ref": "#/$defs/interpolated"},
		}}
	case strings.HasPrefix(t, "map of "):
		return map[string]any{"type": "object", "additionalProperties": typeSchema(strings.TrimPrefix(t, "map of "))}
	}
	return map[string]any{} // any
}

func scalar(typ, desc string) map[string]any {
	s := map[string]any{"anyOf": []any{map[string]any{"type": typ}, map[string]any{"$ref": "#/$defs/interpolated"}}}
	if desc != "" {
		s["description"] = desc
	}
	return s
}

func enumOf(vals []string, desc string) map[string]any {
	s := map[string]any{"anyOf": []any{map[string]any{"enum": vals}, map[string]any{"$ref": "#/$defs/interpolated"}}}
	if desc != "" {
		s["description"] = desc
	}
	return s
}
