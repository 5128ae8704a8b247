package graph

import (
	yaml "go.yaml.in/yaml/v3"
)

// measure counts the values and the nesting depth the document will have
// once its aliases and merge keys (<<: *a) are expanded, and refuses it
// past the limits before anything is expanded. The YAML library keeps an
// alias as a pointer to its anchor's node, so nine levels of nine aliases
// ("billion laughs") are 90 small nodes here; the extent of each anchored
// node is remembered, which makes the count linear in the file.
func measure(root *yaml.Node, lim Limits) *limitError {
	m := &measurer{lim: lim, anchors: map[*yaml.Node]extent{}, open: map[*yaml.Node]bool{}}
	_, err := m.node(root, 0)
	return err
}

// extent is what a value expands to: values and nesting levels.
type extent struct {
	nodes int
	depth int
}

type measurer struct {
	lim     Limits
	anchors map[*yaml.Node]extent
	open    map[*yaml.Node]bool // anchored nodes being measured
	total   int
}

func (m *measurer) add(n *yaml.Node, e extent, level int) *limitError {
	m.total += e.nodes
	if m.total > m.lim.MaxNodes {
		what := "the document holds"
		if n.Kind == yaml.AliasNode {
			what = "YAML aliases and merge keys expand to"
		}
		return &limitError{posOrFirst(n), tooManyNodes(what, m.lim.MaxNodes)}
	}
	if level+e.depth > m.lim.MaxDepth {
		return &limitError{posOrFirst(n), tooDeep(m.lim.MaxDepth)}
	}
	return nil
}

func posOrFirst(n *yaml.Node) Pos {
	p := posOf(n)
	if p.Line == 0 {
		p.Line = 1
	}
	return p
}

// node measures n, found at nesting level (the number of collections
// around it), and returns its extent.
func (m *measurer) node(n *yaml.Node, level int) (extent, *limitError) {
	if n == nil {
		return extent{}, nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		var e extent
		for _, c := range n.Content {
			ce, err := m.node(c, level)
			if err != nil {
				return e, err
			}
			e.nodes += ce.nodes
			e.depth = max(e.depth, ce.depth)
		}
		return e, nil
	case yaml.AliasNode:
		if m.open[n.Alias] {
			return extent{}, &limitError{posOrFirst(n), "alias *" + n.Value + " refers to the value that holds it (an infinitely deep value)"}
		}
		e := m.anchors[n.Alias]
		return e, m.add(n, e, level)
	case yaml.MappingNode, yaml.SequenceNode:
		if level+1 > m.lim.MaxDepth {
			return extent{}, &limitError{posOrFirst(n), tooDeep(m.lim.MaxDepth)}
		}
		if n.Anchor != "" {
			m.open[n] = true
			defer delete(m.open, n)
		}
		e := extent{nodes: 1, depth: 1}
		if err := m.add(n, extent{nodes: 1}, level); err != nil {
			return e, err
		}
		for _, c := range n.Content {
			ce, err := m.node(c, level+1)
			if err != nil {
				return e, err
			}
			e.nodes += ce.nodes
			e.depth = max(e.depth, 1+ce.depth)
		}
		if n.Anchor != "" {
			m.anchors[n] = e
		}
		return e, nil
	}
	e := extent{nodes: 1}
	if n.Anchor != "" {
		m.anchors[n] = e
	}
	return e, m.add(n, e, level)
}
