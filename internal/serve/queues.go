package serve

import (
	"path/filepath"
	"slices"
	"strings"
)

// Queues lists every node of every graph whose plugin is a durable SQLite
// queue node, with the file it uses, sorted by path, graph and node. The
// config is the loaded plan's, so ${...} is already resolved; a graph
// whose file is invalid contributes the plan of its last valid version.
func (s *Supervisor) Queues() []QueueRef {
	s.mu.Lock()
	var out []QueueRef
	for name, g := range s.graphs {
		if g.pending || g.gone {
			continue
		}
		plan := g.plan
		if g.cur != nil {
			plan = g.cur.plan
		} else if plan == nil && g.last != nil {
			plan = g.last.plan
		}
		if plan == nil {
			continue
		}
		for _, pn := range plan.Nodes {
			if !strings.Contains(pn.Plugin, "durable_sqlite") || pn.Config == nil {
				continue
			}
			p, ok := pn.Config.GetString("path")
			if !ok || strings.TrimSpace(p) == "" {
				continue
			}
			out = append(out, QueueRef{Path: p, Graph: name, Node: pn.ID, Plugin: pn.Plugin})
		}
	}
	s.mu.Unlock()
	for i := range out {
		// The nodes open the path relative to the process's working
		// directory, as filepath.Abs resolves it.
		if abs, err := filepath.Abs(out[i].Path); err == nil {
			out[i].Path = abs
		}
	}
	slices.SortFunc(out, func(a, b QueueRef) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		if c := strings.Compare(a.Graph, b.Graph); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out
}
