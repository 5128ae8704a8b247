package graph

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Edge transports. An edge with transport nats cuts the graph: Cut turns
// it into a JetStreamSink fed by its from node and a JetStreamSource that
// feeds its to node, so that the two sides can run in different processes.
const (
	TransportInproc = "inproc"
	TransportNATS   = "nats"

	// The plugins a cut edge becomes.
	CutSinkPlugin   = "schnitzel_stream.nodes.nats:JetStreamSink"
	CutSourcePlugin = "schnitzel_stream.nodes.nats:JetStreamSource"

	// DefaultNATSURL is a cut edge's server when it names no url and
	// NATS_URL is unset.
	DefaultNATSURL = "nats://127.0.0.1:4222"
)

// EdgeNATS is a nats edge's settings, with the defaults filled in.
type EdgeNATS struct {
	Subject string // literal subject the edge's packets are published on
	Stream  string // JetStream stream holding the subject (created by the sink)
	Durable string // the source's durable consumer
	URL     string // server URL (comma list)
	// Connection holds NATS connection keys (creds_file, user, password,
	// tls_ca_file, ...) given to both cut nodes; SinkConfig and
	// SourceConfig hold more keys for one side (max_age_sec,
	// ack_wait_sec, ...). The node configs check them, at the edge's line.
	Connection, SinkConfig, SourceConfig *packet.Map
}

// cutOwnKeys are the keys the cut sets on its nodes itself: the edge's
// own keys (url, subject, stream, durable) say them, or the cut's
// contract does (the sink creates the stream, the source waits for it and
// follows it).
var cutOwnKeys = []string{"url", "subject", "stream", "create_stream", "durable", "filter_subject", "follow", "wait_for_stream"}

var (
	// A stream or durable name: NATS refuses dots, wildcards, white space
	// and path separators; the cut also keeps them to portable names.
	natsNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// One subject token: no wildcard, white space or {template} (the cut
	// publishes on one literal subject).
	subjectTokRE = regexp.MustCompile(`^[^\s*>{}]+$`)
	nameCharRE   = regexp.MustCompile(`[^A-Za-z0-9_-]`)
)

// edgeTransport reads an edge's transport and nats keys.
func (l *loader) edgeTransport(e *Edge, m *packet.Map) {
	subject := e.Subject()
	strKey := func(k string) (string, bool) {
		raw, ok := m.Get(k)
		if !ok || raw == nil {
			return "", false
		}
		s, isStr := raw.(string)
		if !isStr || strings.TrimSpace(s) == "" {
			l.errf(e.path+"."+k, subject, "edge %s must be a non-empty string, got %s", k, describe(raw))
			return "", false
		}
		return strings.TrimSpace(s), true
	}
	if t, ok := strKey("transport"); ok {
		switch t {
		case TransportInproc, TransportNATS:
			e.Transport = t
		default:
			l.errf(e.path+".transport", subject, "unknown edge transport %q (known: inproc, nats)", t)
			return
		}
	}
	if e.Transport != TransportNATS {
		for _, k := range natsEdgeKeys {
			if _, has := m.Get(k); has {
				l.errf(e.path+"."+k, subject, "edge key %s is for a transport: nats edge (this edge's transport is %s)", k, or(e.Transport, "inproc, the default"))
			}
		}
		return
	}
	if e.From != "" && e.From == e.To {
		l.errf(e.path, subject, "a transport: nats edge cannot go from a node to itself")
	}
	token := cutToken(e)
	n := &EdgeNATS{}
	if s, ok := strKey("subject"); ok {
		if err := checkCutSubject(s); err != nil {
			l.errf(e.path+".subject", subject, "edge subject %q: %v", s, err)
		}
		n.Subject = s
	} else {
		n.Subject = "cut." + graphToken(l.g.File) + "." + token
	}
	for _, k := range []struct {
		key string
		dst *string
		def string
	}{
		{"stream", &n.Stream, "cut_" + graphToken(l.g.File) + "_" + token},
		{"durable", &n.Durable, "cut_" + token},
	} {
		s, ok := strKey(k.key)
		if !ok {
			*k.dst = k.def
			continue
		}
		if !natsNameRE.MatchString(s) {
			l.errf(e.path+"."+k.key, subject, "edge %s %q: a NATS name of letters, digits, _ and - (no dots, wildcards or spaces)", k.key, s)
		}
		*k.dst = s
	}
	if u, ok := strKey("url"); ok {
		for _, part := range strings.Split(u, ",") {
			if strings.TrimSpace(part) == "" {
				l.errf(e.path+".url", subject, "edge url has an empty entry in its comma list")
				break
			}
		}
		n.URL = u
	} else if env, ok := l.getenv("NATS_URL"); ok && strings.TrimSpace(env) != "" {
		n.URL = strings.TrimSpace(env)
	} else {
		n.URL = DefaultNATSURL
	}
	for _, k := range []struct {
		key string
		dst **packet.Map
	}{{"connection", &n.Connection}, {"sink_config", &n.SinkConfig}, {"source_config", &n.SourceConfig}} {
		raw, ok := m.Get(k.key)
		if !ok || raw == nil {
			continue
		}
		cm, isMap := raw.(*packet.Map)
		if !isMap {
			l.errf(e.path+"."+k.key, subject, "edge %s must be a mapping of node config keys, got %s", k.key, describe(raw))
			continue
		}
		for _, own := range cutOwnKeys {
			if _, has := cm.Get(own); has {
				l.errf(e.path+"."+k.key+"."+own, subject, "edge %s.%s: the cut sets %s itself (url, subject, stream and durable are keys of the edge)", k.key, own, own)
			}
		}
		*k.dst = cm
	}
	e.NATS = n
}

// withKeys returns base with the entries of each extra map added.
func withKeys(base *packet.Map, extra ...*packet.Map) *packet.Map {
	for _, x := range extra {
		if x == nil {
			continue
		}
		for _, kv := range x.Entries() {
			base.Set(kv.Key, kv.Value)
		}
	}
	return base
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkCutSubject accepts a literal subject: dot-separated tokens, none
// empty, no wildcards, white space or templates.
func checkCutSubject(s string) error {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("has an empty token")
		}
		if !subjectTokRE.MatchString(tok) {
			return fmt.Errorf("token %q: a cut edge's subject is literal (no wildcards, white space or {fields})", tok)
		}
	}
	return nil
}

// cutToken names an edge in derived names: from[_port]_to[_port].
func cutToken(e *Edge) string {
	parts := []string{e.From}
	if e.FromPort != "" {
		parts = append(parts, e.FromPort)
	}
	parts = append(parts, e.To)
	if e.ToPort != "" {
		parts = append(parts, e.ToPort)
	}
	for i, p := range parts {
		parts[i] = nameCharRE.ReplaceAllString(p, "_")
	}
	return strings.Join(parts, "_")
}

// graphToken is the graph file's base name without extension, as a NATS
// name: both processes that run halves of one file derive the same names.
func graphToken(file string) string {
	base := filepath.Base(file)
	for _, ext := range []string{".yaml", ".yml", ".json"} {
		base = strings.TrimSuffix(base, ext)
	}
	base = strings.Trim(nameCharRE.ReplaceAllString(base, "_"), "_")
	if base == "" {
		return "graph"
	}
	return base
}

// CutNodeIDs are the ids of the sink and source a nats edge becomes.
func CutNodeIDs(e *Edge) (pub, sub string) {
	t := cutToken(e)
	return "cut_" + t + "_pub", "cut_" + t + "_sub"
}

// cut rewrites every nats edge a -> b into a -> JetStreamSink and
// JetStreamSource -> b. The new nodes and edges carry the edge's position,
// so a problem with them (a bad url, an unknown node) points at its line.
func (l *loader) cut() {
	g := l.g
	ids := map[string]bool{}
	for _, n := range g.Nodes {
		ids[n.ID] = true
	}
	subjects := map[string]*Edge{}
	var edges []*Edge
	for _, e := range g.Edges {
		if e.Transport != TransportNATS {
			edges = append(edges, e)
			continue
		}
		subject := e.Subject()
		ok := true
		if first, dup := subjects[e.NATS.Subject]; dup {
			l.errf(e.path, subject, "subject %q is already the subject of the nats edge at line %d: set subject (and stream) on one of them", e.NATS.Subject, first.Pos.Line)
			ok = false
		}
		subjects[e.NATS.Subject] = e
		if from := g.NodeByID(e.From); from != nil && from.Kind == KindSink {
			l.errf(e.path+".from", subject, "sink node must not have outgoing edges: %s", e.From)
			ok = false
		}
		if to := g.NodeByID(e.To); to != nil && to.Kind == KindSource {
			l.errf(e.path+".to", subject, "source node must not have incoming edges: %s", e.To)
			ok = false
		}
		pub, sub := CutNodeIDs(e)
		for _, id := range []string{pub, sub} {
			if ids[id] {
				l.errf(e.path, subject, "the nats edge needs node id %q, which the graph already uses", id)
				ok = false
			}
			ids[id] = true
		}
		if !ok {
			continue
		}
		n := e.NATS
		pubCfg := withKeys(packet.MapOf("url", n.URL, "subject", n.Subject, "stream", n.Stream, "create_stream", true),
			n.Connection, n.SinkConfig)
		subCfg := withKeys(packet.MapOf("url", n.URL, "stream", n.Stream, "durable", n.Durable, "filter_subject", n.Subject, "follow", true, "wait_for_stream", true),
			n.Connection, n.SourceConfig)
		pn := &Node{Index: len(g.Nodes), ID: pub, Kind: KindSink, Plugin: CutSinkPlugin, Config: pubCfg, CutOf: e, Pos: e.Pos, path: e.path}
		sn := &Node{Index: len(g.Nodes) + 1, ID: sub, Kind: KindSource, Plugin: CutSourcePlugin, Config: subCfg, CutOf: e, Pos: e.Pos, path: e.path}
		g.Nodes = append(g.Nodes, pn, sn)
		edges = append(edges,
			&Edge{From: e.From, To: pub, FromPort: e.FromPort, Pos: e.Pos, path: e.path},
			&Edge{From: sub, To: e.To, ToPort: e.ToPort, Pos: e.Pos, path: e.path})
		g.Cuts = append(g.Cuts, e)
	}
	for i, e := range edges {
		e.Index = i
	}
	g.Edges = edges
}

// Parts are the graph's connected parts (edges taken both ways), each in
// declaration order, ordered by their first node. A graph without nats
// edges is usually one part.
func (g *Graph) Parts() [][]*Node {
	idx := map[string]int{}
	for i, n := range g.Nodes {
		if _, dup := idx[n.ID]; !dup {
			idx[n.ID] = i
		}
	}
	parent := make([]int, len(g.Nodes))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, e := range g.Edges {
		a, okA := idx[e.From]
		b, okB := idx[e.To]
		if !okA || !okB {
			continue
		}
		ra, rb := find(a), find(b)
		if ra != rb {
			parent[max(ra, rb)] = min(ra, rb) // the lower index leads: parts stay in declaration order
		}
	}
	var parts [][]*Node
	at := map[int]int{}
	for i, n := range g.Nodes {
		r := find(i)
		k, ok := at[r]
		if !ok {
			k = len(parts)
			at[r] = k
			parts = append(parts, nil)
		}
		parts[k] = append(parts[k], n)
	}
	return parts
}

// Part returns the graph reduced to the connected part holding node id:
// what one process of a cut graph runs.
func (g *Graph) Part(id string) (*Graph, error) {
	for _, part := range g.Parts() {
		for _, n := range part {
			if n.ID == id {
				return g.subgraph(part), nil
			}
		}
	}
	var ids []string
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
	}
	return nil, fmt.Errorf("%s: no node %q to pick a part by%s", g.File, id, plugin.DidYouMean(id, ids))
}

func (g *Graph) subgraph(nodes []*Node) *Graph {
	in := map[string]bool{}
	sub := &Graph{File: g.File, Version: g.Version, Config: g.Config, pos: g.pos}
	for i, n := range nodes {
		c := *n
		c.Index = i
		sub.Nodes = append(sub.Nodes, &c)
		in[n.ID] = true
	}
	for _, e := range g.Edges {
		if in[e.From] {
			c := *e
			c.Index = len(sub.Edges)
			sub.Edges = append(sub.Edges, &c)
		}
	}
	for _, e := range g.Cuts {
		if in[e.From] || in[e.To] {
			sub.Cuts = append(sub.Cuts, e)
		}
	}
	return sub
}
