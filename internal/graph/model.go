// Package graph loads graph files (v1 job graphs and v2 node graphs) with
// the position of every node, edge and config key, and validates them
// against a plugin registry: topology, kind compatibility, ports, plugin
// allowlist and typed config. Every problem is reported with file:line.
package graph

import (
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Node kinds. delay and initial mark the nodes a cycle may pass through.
const (
	KindSource  = "source"
	KindNode    = "node"
	KindSink    = "sink"
	KindDelay   = "delay"
	KindInitial = "initial"
)

// Graph is a loaded graph file.
type Graph struct {
	File    string // as given on the command line
	Version int    // 1 (job graph) or 2 (node graph)

	// v1
	Job    string
	JobPos Pos

	// v2
	Nodes []*Node
	Edges []*Edge
	// Cuts are the transport: nats edges, as written; Nodes and Edges
	// hold what Cut made of them.
	Cuts []*Edge

	Config *packet.Map // top-level config (v1: the job's config)

	pos map[string]Pos
}

// Node is a v2 graph node.
type Node struct {
	Index     int
	ID        string
	Kind      string
	Plugin    string
	Config    *packet.Map // without __runtime__ and transport
	Runtime   RuntimeConfig
	Transport string
	// CutOf is the nats edge this node was made for (Cut), else nil.
	CutOf *Edge
	Pos   Pos
	path  string // "nodes[3]"
}

// Overflow policies for a node's inbox.
const (
	OverflowBlock      = "block"
	OverflowDropNew    = "drop_new"
	OverflowDropOldest = "drop_oldest"
	OverflowError      = "error"
)

// RuntimeConfig is a node's config.__runtime__.
type RuntimeConfig struct {
	InboxMax      int    // 0 = the runtime's default bound
	InboxMaxBytes int64  // 0 = the runtime's default byte bound (graphs that carry frames)
	Overflow      string // block (default), drop_new, drop_oldest, error
}

// Edge is a v2 graph edge.
type Edge struct {
	Index    int
	From     string
	To       string
	FromPort string
	ToPort   string
	// Transport is "" or "inproc" (in the process) or "nats" (the graph
	// is cut here: see Cut); NATS holds the cut's settings.
	Transport string
	NATS      *EdgeNATS
	Pos       Pos
	path      string // "edges[2]"
}

// PosOf returns the position of a value path such as "nodes[0].config.x",
// falling back to the nearest enclosing value.
func (g *Graph) PosOf(path string) Pos {
	for path != "" {
		if p, ok := g.pos[path]; ok && p.Line > 0 {
			return p
		}
		path = parentPath(path)
	}
	return Pos{}
}

func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}

// ConfigPos returns the position of a key path inside a node's config.
func (g *Graph) ConfigPos(n *Node, keyPath string) Pos {
	if keyPath == "" {
		return g.PosOf(n.path + ".config")
	}
	return g.PosOf(n.path + ".config." + keyPath)
}

// NodeByID returns the node with id, or nil.
func (g *Graph) NodeByID(id string) *Node {
	for _, n := range g.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// The keys each part of a graph file has. Anything else is an error (a
// typo such as `nodez:` must not leave an empty graph that runs), except
// keys starting with "x-": the place for YAML anchors and notes.
var (
	topKeysV1  = []string{"version", "job", "config"}
	topKeysV2  = []string{"version", "nodes", "edges", "config"}
	nodeKeySet = []string{"id", "node_id", "kind", "plugin", "config"}
	edgeKeySet = []string{"from", "to", "src", "dst", "from_port", "to_port", "src_port", "dst_port", "transport", "subject", "stream", "durable", "url",
		"connection", "sink_config", "source_config"}
	// natsEdgeKeys are the edge keys only a transport: nats edge takes.
	natsEdgeKeys = []string{"subject", "stream", "durable", "url", "connection", "sink_config", "source_config"}
	runtimeSet   = []string{"inbox_max", "inbox_max_bytes", "inbox_overflow"}
)

// unknownKey reports key, found where (e.g. "top-level", "node"), which is
// not among known: an error with the nearest known key.
func (l *loader) unknownKey(path, subject, where, key string, known []string) {
	if strings.HasPrefix(key, "x-") {
		return
	}
	near := known
	if where == "v1 top-level" {
		// A file without version and without nodes is read as v1, so
		// `nodez:` lands here: suggest the v2 keys too.
		near = append(append([]string(nil), topKeysV1...), "nodes", "edges")
	}
	hint := plugin.DidYouMean(key, near)
	if hint == "" {
		hint = " (known: " + strings.Join(known, ", ") + "; keys starting with x- are ignored)"
	}
	l.errf(path, subject, "unknown %s key %q%s", where, key, hint)
}

// AddNode appends a node that no file declared (a test double, say);
// diagnostics about it carry no line.
func (g *Graph) AddNode(id, kind, plugin string, cfg *packet.Map) *Node {
	n := &Node{Index: len(g.Nodes), ID: id, Kind: kind, Plugin: plugin, Config: cfg, path: "added." + id}
	g.Nodes = append(g.Nodes, n)
	return n
}

// AddEdge appends an edge that no file declared.
func (g *Graph) AddEdge(from, to string) *Edge {
	e := &Edge{Index: len(g.Edges), From: from, To: to, path: "added." + from + "->" + to}
	g.Edges = append(g.Edges, e)
	return e
}
