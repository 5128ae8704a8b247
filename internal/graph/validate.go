package graph

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Plan is a validated graph, ready for the runtime.
type Plan struct {
	Graph *Graph
	Nodes []*PlanNode // declaration order
	Job   *plugin.JobSpec
	// Cyclic is true when the graph has (allowed) cycles through
	// delay/initial nodes.
	Cyclic bool
}

// PlanNode is a node with its resolved plugin and decoded config.
type PlanNode struct {
	*Node
	Entry   *plugin.Entry
	Decoded any // typed config from Entry.Decode, for Entry.Build
	badCfg  bool
	ports   []string // from a plugin.PortConfig; nil: Entry.OutPorts
	In      []*Edge
	Out     []*Edge
}

// OutPorts are the node's output ports: its config's when the config
// decides them (plugin.PortConfig), otherwise its Spec's.
func (pn *PlanNode) OutPorts() []string {
	if pn.ports != nil {
		return pn.ports
	}
	if pn.Entry == nil {
		return nil
	}
	return pn.Entry.OutPorts
}

var portRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var kinds = []string{KindSource, KindNode, KindSink, KindDelay, KindInitial}

// Validate checks a loaded graph against the registry and allowlist. It
// reports every problem it finds; the plan is nil when any is an error.
func Validate(g *Graph, reg *plugin.Registry, pol plugin.Policy) (*Plan, Diags) {
	v := &validator{g: g, reg: reg, pol: pol}
	if g.Version == 1 {
		return v.validateV1()
	}
	return v.validateV2()
}

type validator struct {
	g     *Graph
	reg   *plugin.Registry
	pol   plugin.Policy
	diags Diags
}

func (v *validator) at(sev Severity, p Pos, subject, format string, args ...any) {
	v.diags = append(v.diags, Diag{File: v.g.File, Line: p.Line, Col: p.Col, Severity: sev, Subject: subject, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) validateV1() (*Plan, Diags) {
	g := v.g
	if g.Job == "" {
		return nil, v.diags
	}
	if err := v.pol.Check(g.Job); err != nil {
		v.at(SevError, g.JobPos, "job", "%v", err)
		return nil, v.diags
	}
	job, ok := v.reg.LookupJob(g.Job)
	if !ok {
		v.at(SevError, g.JobPos, "job", "job %q is not registered in this build", g.Job)
		return nil, v.diags
	}
	return &Plan{Graph: g, Job: job}, v.diags
}

func (v *validator) validateV2() (*Plan, Diags) {
	g := v.g
	byID := map[string]*PlanNode{}
	var nodes []*PlanNode
	for _, n := range g.Nodes {
		if n.ID == "" {
			continue // reported by the loader
		}
		subject := fmt.Sprintf("node %q", n.ID)
		if r, bad := controlRune(n.ID); bad {
			// An id reaches log lines, metric labels, DOT/Mermaid output
			// and lock file names: a newline or a bidi override there
			// forges lines or hides text. Upstream accepts any string.
			v.at(SevError, g.PosOf(n.path+".id"), subject, "node_id contains a control character (U+%04X): ids are names, write them without escapes", r)
			continue
		}
		if first, dup := byID[n.ID]; dup {
			v.at(SevError, n.Pos, subject, "duplicate node_id: %s (first defined at line %d)", n.ID, first.Pos.Line)
			continue
		}
		pn := &PlanNode{Node: n}
		byID[n.ID] = pn
		nodes = append(nodes, pn)
		if !slices.Contains(kinds, n.Kind) {
			v.at(SevError, g.PosOf(n.path+".kind"), subject, "unsupported node kind: %s (supported: source, node, sink, delay, initial)", n.Kind)
		}
		if n.Transport != "" && n.Transport != "inproc" {
			v.at(SevError, g.PosOf(n.path+".config.transport"), subject, "node transport mismatch: node=%s transport=%s expected=inproc", n.ID, n.Transport)
		}
	}

	var edges []*Edge
	for _, e := range g.Edges {
		if e.From == "" || e.To == "" {
			continue // reported by the loader
		}
		ok := true
		if _, found := byID[e.From]; !found {
			v.at(SevError, g.PosOf(e.path+".from"), e.Subject(), "unknown node %q%s", e.From, v.suggestNode(e.From, byID))
			ok = false
		}
		if _, found := byID[e.To]; !found {
			v.at(SevError, g.PosOf(e.path+".to"), e.Subject(), "unknown node %q%s", e.To, v.suggestNode(e.To, byID))
			ok = false
		}
		for _, p := range []struct{ key, val string }{{"from_port", e.FromPort}, {"to_port", e.ToPort}} {
			if p.val != "" && !portRE.MatchString(p.val) {
				v.at(SevError, e.Pos, e.Subject(), "edge %s is not a valid identifier: %s", p.key, p.val)
				ok = false
			}
		}
		if !ok {
			continue
		}
		src, dst := byID[e.From], byID[e.To]
		if dst.Kind == KindSource {
			v.at(SevError, e.Pos, e.Subject(), "source node must not have incoming edges: %s", dst.ID)
		}
		if src.Kind == KindSink {
			v.at(SevError, e.Pos, e.Subject(), "sink node must not have outgoing edges: %s", src.ID)
		}
		src.Out = append(src.Out, e)
		dst.In = append(dst.In, e)
		edges = append(edges, e)
	}

	cyclic, loops := v.checkCycles(nodes, edges, byID)

	for _, pn := range nodes {
		v.checkPlugin(pn)
	}
	v.checkClosedCycles(loops, edges, byID) // needs the plugins' ports
	for _, e := range edges {
		v.checkKinds(e, byID[e.From], byID[e.To])
	}
	v.checkSources(nodes)
	for _, pn := range nodes {
		v.checkForwarding(pn, byID)
	}
	for _, pn := range nodes {
		if pn.Kind != KindSource && len(pn.In) == 0 && pn.Kind != KindInitial {
			v.at(SevWarning, pn.Pos, fmt.Sprintf("node %q", pn.ID), "has no incoming edges and is not a source: it will never receive a packet")
		}
	}
	SortDiags(v.diags)
	if v.diags.HasErrors() {
		return nil, v.diags
	}
	return &Plan{Graph: g, Nodes: nodes, Cyclic: cyclic}, v.diags
}

// suggestNode names at most three ids near id (the first in sort order):
// a graph of many nodes "n1", "n2", ... and many edges to "n" would
// otherwise print every id in every message (gigabytes).
func (v *validator) suggestNode(id string, byID map[string]*PlanNode) string {
	const most = 3
	var near []string
	for k := range byID {
		if strings.EqualFold(k, id) || strings.HasPrefix(k, id) || strings.HasPrefix(id, k) {
			if len(near) == most && k > near[most-1] {
				continue
			}
			near = append(near, k)
			sort.Strings(near)
			if len(near) > most {
				near = near[:most]
			}
		}
	}
	if len(near) == 0 {
		return ""
	}
	for i, k := range near {
		near[i] = fmt.Sprintf("%q", k)
	}
	return " (did you mean " + strings.Join(near, " or ") + "?)"
}

func (v *validator) checkPlugin(pn *PlanNode) {
	g := v.g
	subject := fmt.Sprintf("node %q", pn.ID)
	ppos := g.PosOf(pn.path + ".plugin")
	if pn.Plugin == "" || !strings.Contains(pn.Plugin, ":") {
		// The loader reports the form; a newcomer writing a bare class name
		// ("Filter") is told the full name here.
		if s := v.reg.Suggest(pn.Plugin); pn.Plugin != "" && len(s) > 0 {
			v.at(SevWarning, ppos, subject, "plugin %q: did you mean %s?", pn.Plugin, strings.Join(s, ", "))
		}
		return
	}
	if err := v.pol.Check(pn.Plugin); err != nil {
		v.at(SevError, ppos, subject, "%v", err)
		return
	}
	e, ok, ferr := v.reg.Resolve(pn.Plugin, dirOf(g.File))
	if ferr != nil {
		v.at(SevError, ppos, subject, "plugin %q: %v", pn.Plugin, ferr)
		return
	}
	if !ok {
		msg := fmt.Sprintf("plugin %q is not registered in this build", pn.Plugin)
		if s := v.reg.Suggest(pn.Plugin); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, ", ") + "?)"
		}
		msg += "; `schnitzel plugins` lists what is"
		v.at(SevError, ppos, subject, "%s", msg)
		return
	}
	pn.Entry = e
	isSourcePlugin := e.Role == plugin.RoleSource
	switch {
	case pn.Kind == KindSource && !isSourcePlugin:
		v.at(SevError, g.PosOf(pn.path+".kind"), subject, "source node plugin must implement run(): %s is a %s plugin", pn.Plugin, e.Role)
	case pn.Kind != KindSource && isSourcePlugin && slices.Contains(kinds, pn.Kind):
		v.at(SevError, g.PosOf(pn.path+".kind"), subject, "node plugin must implement process(): %s is a source plugin; use kind: source", pn.Plugin)
	}
	dec, warns, errs := e.Decode(pn.Config)
	for _, w := range warns {
		v.at(SevWarning, g.ConfigPos(pn.Node, w.Path), subject, "%s", w.Error())
	}
	for _, fe := range errs {
		v.at(SevError, g.ConfigPos(pn.Node, fe.Path), subject, "%s", fe.Error())
	}
	pn.badCfg = len(errs) > 0
	pn.Decoded = dec
	if pc, ok := dec.(plugin.PortConfig); ok {
		pn.ports = append([]string{}, pc.OutPorts()...) // non-nil: the config decides, even when it names none
	}
	ports := pn.OutPorts()
	for _, out := range pn.Out {
		switch {
		case out.FromPort == "":
		case len(ports) == 0:
			v.at(SevWarning, g.PosOf(out.path+".from_port"), out.Subject(), "from_port %q: %s declares no output ports, so every packet goes down every edge (from_port ignored)", out.FromPort, shortName(pn.Plugin))
		case !slices.Contains(ports, out.FromPort):
			v.at(SevError, g.PosOf(out.path+".from_port"), out.Subject(), "node %q has no output port %q%s (ports of %s: %s)", pn.ID, out.FromPort, plugin.DidYouMean(out.FromPort, ports), pn.Plugin, strings.Join(ports, ", "))
		}
	}
	for _, in := range pn.In {
		if in.ToPort != "" && !e.PortAware {
			v.at(SevWarning, g.PosOf(in.path+".to_port"), in.Subject(), "to_port %q: %s does not read input ports (to_port ignored)", in.ToPort, shortName(pn.Plugin))
		}
	}
}

// dirOf is the graph file's directory, where a plugin resolved by the
// registry's fallback may live; "" for a graph that came from no file.
func dirOf(file string) string {
	if file == "" {
		return ""
	}
	return filepath.Dir(file)
}

func shortName(p string) string {
	if i := strings.LastIndex(p, ":"); i >= 0 {
		return p[i+1:]
	}
	return p
}

// checkSources rejects a v2 graph that cannot produce anything: no nodes,
// or no node of kind source (only sources start packets; a graph of
// initial/delay nodes alone would run, do nothing and report ok).
func (v *validator) checkSources(nodes []*PlanNode) {
	g := v.g
	if len(g.Nodes) == 0 {
		if _, has := g.pos["nodes"]; has {
			v.at(SevError, g.PosOf("nodes"), "nodes", "the graph has no nodes: nothing would run (docs/graph-format.md)")
		} else {
			v.at(SevError, Pos{Line: 1}, "", "the graph has no nodes: a v2 graph needs a `nodes:` list (docs/graph-format.md)")
		}
		return
	}
	for _, pn := range nodes {
		if pn.Kind == KindSource {
			return
		}
	}
	if len(nodes) == 0 {
		return // every node was already reported
	}
	v.at(SevError, nodes[0].Pos, "", "the graph has no source: no node has kind: source, so no packet would ever be produced (a source plugin such as StaticSource or TickerSource, with kind: source)")
}

// checkForwarding rejects a sink with outgoing edges that does not forward:
// nothing would ever reach the nodes after it (HttpJsonSink before
// SqliteQueueAckSink without forward: true never acks).
func (v *validator) checkForwarding(pn *PlanNode, byID map[string]*PlanNode) {
	if pn.Entry == nil || pn.Entry.Role != plugin.RoleSink || len(pn.Out) == 0 || pn.Decoded == nil || pn.badCfg || pn.Kind == KindSink {
		return
	}
	fwd, has := forwardOf(pn.Decoded)
	if !has || fwd {
		return
	}
	var next []string
	for _, e := range pn.Out {
		next = append(next, fmt.Sprintf("%q", e.To))
	}
	why := ""
	for _, e := range pn.Out {
		if dst := byID[e.To]; dst != nil && strings.HasSuffix(dst.Plugin, "AckSink") {
			why = fmt.Sprintf(": %s %q would never acknowledge anything", shortName(dst.Plugin), dst.ID)
			break
		}
	}
	v.at(SevError, v.g.ConfigPos(pn.Node, "forward"), fmt.Sprintf("node %q", pn.ID), "%s does not forward (forward: false), so %s never receives a packet%s; set forward: true", shortName(pn.Plugin), strings.Join(next, ", "), why)
}

// forwardOf reads the `forward` key of a decoded sink config.
func forwardOf(cfg any) (fwd, has bool) {
	rv := reflect.ValueOf(cfg)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return false, false
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return false, false
	}
	t := rv.Type()
	for i := range t.NumField() {
		if key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); key == "forward" && rv.Field(i).Kind() == reflect.Bool {
			return rv.Field(i).Bool(), true
		}
	}
	return false, false
}

func (v *validator) checkKinds(e *Edge, src, dst *PlanNode) {
	if src.Entry == nil || dst.Entry == nil {
		return
	}
	// Payload profiles first, as upstream (HEAD) checks them: frames must
	// not reach a node that writes or stores packets.
	if sp, dp := src.Entry.OutProfile, dst.Entry.InProfile; sp != "" && dp != "" && !plugin.ProfileAccepts(sp, dp) {
		why := ""
		if sp == plugin.ProfileInproc {
			why = fmt.Sprintf(" (%s emits in-process values such as decoded frames, which %s cannot take)", src.ID, dst.ID)
		}
		v.at(SevError, e.Pos, e.Subject(), "payload profile mismatch: %s(%s) -> %s(%s) is not compatible%s", src.ID, sp, dst.ID, dp, why)
		return
	}
	out, in := src.Entry.Out, dst.Entry.In
	if plugin.Wildcard(out) || plugin.Wildcard(in) {
		return
	}
	for _, k := range out {
		if slices.Contains(in, k) {
			return
		}
	}
	v.at(SevError, e.Pos, e.Subject(), "packet kind mismatch: %s -> %s (%s not compatible with %s)", src.ID, dst.ID, pyList(out), pyList(in))
}

func pyList(s []string) string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	q := make([]string, len(c))
	for i, x := range c {
		q[i] = "'" + x + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// checkCycles finds strongly connected components (Tarjan). A cycle is
// allowed only through a node of kind delay or initial.
// It returns whether the graph is cyclic and its allowed cycles.
func (v *validator) checkCycles(nodes []*PlanNode, edges []*Edge, byID map[string]*PlanNode) (bool, [][]string) {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	next := 0
	adj := map[string][]string{}
	self := map[string]bool{}
	for _, e := range edges {
		adj[e.From] = append(adj[e.From], e.To)
		if e.From == e.To {
			self[e.From] = true
		}
	}
	var sccs [][]string
	var strong func(u string)
	strong = func(u string) {
		index[u], low[u] = next, next
		next++
		stack = append(stack, u)
		onStack[u] = true
		for _, w := range adj[u] {
			if _, seen := index[w]; !seen {
				strong(w)
				low[u] = min(low[u], low[w])
			} else if onStack[w] {
				low[u] = min(low[u], index[w])
			}
		}
		if low[u] == index[u] {
			var comp []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == u {
					break
				}
			}
			sccs = append(sccs, comp)
		}
	}
	for _, n := range nodes {
		if _, seen := index[n.ID]; !seen {
			strong(n.ID)
		}
	}
	cyclic := false
	var loops [][]string
	for _, comp := range sccs {
		if len(comp) == 1 && !self[comp[0]] {
			continue
		}
		cyclic = true
		ok := false
		for _, id := range comp {
			k := strings.ToLower(byID[id].Kind)
			if k == KindDelay || k == KindInitial {
				ok = true
			}
		}
		if !ok {
			path := cyclePath(comp, adj)
			first := byID[path[0]]
			v.at(SevError, first.Pos, fmt.Sprintf("node %q", first.ID), "graph contains a cycle without a delay/initial node: %s (a cycle must pass through a node of kind delay or initial)", strings.Join(path, " -> "))
			continue
		}
		loops = append(loops, comp)
	}
	return cyclic, loops
}

// checkClosedCycles warns about allowed cycles that nothing can leave.
func (v *validator) checkClosedCycles(loops [][]string, edges []*Edge, byID map[string]*PlanNode) {
	for _, comp := range loops {
		if !closedCycle(comp, edges, byID) {
			continue
		}
		adj := map[string][]string{}
		for _, e := range edges {
			adj[e.From] = append(adj[e.From], e.To)
		}
		path := cyclePath(comp, adj)
		first := byID[path[0]]
		v.at(SevWarning, first.Pos, fmt.Sprintf("node %q", first.ID), "cycle %s has no edge leaving it and no node with an unconnected output port: packets that enter it never reach a sink, so the run ends only on a stop signal or when the cycle's inbox overflows (unless a node in it drops packets); add an edge out of the cycle", strings.Join(path, " -> "))
	}
}

// closedCycle says whether nothing can leave a strongly connected
// component: no edge to a node outside it, and no node in it that declares
// an output port no edge uses (emitting there ends a packet's journey).
func closedCycle(comp []string, edges []*Edge, byID map[string]*PlanNode) bool {
	in := map[string]bool{}
	for _, id := range comp {
		in[id] = true
	}
	used := map[string]map[string]bool{}
	for _, e := range edges {
		if !in[e.From] {
			continue
		}
		if !in[e.To] {
			return false
		}
		if used[e.From] == nil {
			used[e.From] = map[string]bool{}
		}
		used[e.From][e.FromPort] = true
	}
	for _, id := range comp {
		pn := byID[id]
		if pn.Entry == nil {
			return false // unknown plugin: already an error, say nothing more
		}
		for _, port := range pn.OutPorts() {
			if !used[id][port] {
				return false
			}
		}
	}
	return true
}

// cyclePath returns one concrete cycle inside a component, for messages.
func cyclePath(comp []string, adj map[string][]string) []string {
	in := map[string]bool{}
	for _, id := range comp {
		in[id] = true
	}
	sort.Strings(comp)
	start := comp[0]
	path := []string{start}
	seen := map[string]bool{start: true}
	cur := start
	for {
		var nxt string
		for _, w := range adj[cur] {
			if w == start {
				return append(path, start)
			}
			if in[w] && !seen[w] && nxt == "" {
				nxt = w
			}
		}
		if nxt == "" {
			return append(path, start)
		}
		seen[nxt] = true
		path = append(path, nxt)
		cur = nxt
	}
}

// SortDiags orders diagnostics by line, keeping the check order on a line.
func SortDiags(ds Diags) {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Line < ds[j].Line })
}

// controlRune returns the first control, line-separator or bidi-control
// character in s.
func controlRune(s string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return r, true
		}
	}
	return 0, false
}
