// Package procgraph reads, validates and runs process graphs: upstream's
// `version: 1` files that link several graphs (processes) through
// channels (SQLite queue files; ours also NATS JetStream subjects,
// transport: nats). Upstream only validates them; here they also run,
// every process graph in this process under one supervisor.
//
// Differences from upstream (docs/compat.md "Process graphs"): every path
// resolves against the working directory, as the queue nodes open them
// (D-PG-1); cycles between processes, two channels on one file and
// unknown keys are errors, an unlinked process a warning, and plugin
// aliases match (D-PG-2).
package procgraph

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// The queue nodes a link's bridge contract names (canonical names; an
// alias in a graph resolves to the same entry).
const (
	queueSink   = "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink"
	queueSource = "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource"
	queueAck    = "schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink"
)

// KindSQLiteQueue is the one kind of a sqlite channel (upstream's).
const KindSQLiteQueue = "sqlite_queue"

// Channel transports: upstream's SQLite queue file, or a NATS JetStream
// stream (ours: the graphs name the JetStream nodes themselves, and the
// bridge contract checks they match the channel).
const (
	TransportSQLite = "sqlite"
	TransportNATS   = "nats"
)

// DefaultNATSURL is a nats channel's url when neither the channel nor
// NATS_URL names one.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// The JetStream nodes a nats channel's bridge contract names.
const (
	jsSink   = "schnitzel_stream.nodes.nats:JetStreamSink"
	jsSource = "schnitzel_stream.nodes.nats:JetStreamSource"
)

// Spec is a loaded process graph file.
type Spec struct {
	File      string
	Processes []*Process
	Channels  []*Channel
	Links     []*Link
}

// Process is one graph of the spec.
type Process struct {
	ID    string
	Graph string // as written
	Abs   string // resolved against the working directory
	Line  int
}

// Channel is a queue file (transport sqlite) or a JetStream subject in a
// stream (transport nats) two processes share.
type Channel struct {
	ID         string
	Transport  string // TransportSQLite or TransportNATS
	Kind       string
	Path       string
	Abs        string
	RequireAck bool
	// nats only
	Subject, Stream, URL string
	Line                 int
}

// Where is the channel as reports show it: the queue file, or the
// stream, subject and server (credentials masked).
func (c *Channel) Where() string {
	if c.Transport == TransportNATS {
		return fmt.Sprintf("%s stream=%s subject=%s", redact.URL(c.URL), c.Stream, c.Subject)
	}
	return c.Abs
}

// Link says producer writes the channel and consumer reads it.
type Link struct {
	Producer, Consumer, Channel string
	Line                        int
}

var (
	topKeys     = []string{"version", "processes", "channels", "links", "config"}
	processKeys = []string{"id", "process_id", "graph"}
	channelKeys = []string{"id", "channel_id", "transport", "kind", "path", "require_ack", "subject", "stream", "url"}
	sqliteKeys  = []string{"kind", "path", "require_ack"}
	natsKeys    = []string{"subject", "stream", "url"}
	linkKeys    = []string{"producer", "consumer", "channel"}
)

// LoadFile reads a process graph file. getenv answers ${oc.env:...}.
func LoadFile(path string, getenv func(string) (string, bool)) (*Spec, graph.Diags) {
	doc, diags := graph.LoadDocumentFile(path, getenv, graph.Limits{})
	if doc == nil {
		return nil, diags
	}
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	l := &loader{doc: doc, diags: diags, getenv: getenv}
	s := l.spec()
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	return s, l.diags
}

type loader struct {
	doc    *graph.Document
	diags  graph.Diags
	getenv func(string) (string, bool)
}

func (l *loader) errf(path, format string, args ...any) {
	p := l.doc.PosOf(path)
	l.diags = append(l.diags, graph.Diag{File: l.doc.File, Line: p.Line, Col: p.Col, Severity: graph.SevError,
		Subject: path, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) keys(m *packet.Map, path, what string, known []string) {
	for _, k := range m.Keys() {
		if strings.HasPrefix(k, "x-") {
			continue
		}
		ok := false
		for _, kk := range known {
			ok = ok || k == kk
		}
		if !ok {
			l.errf(join(path, k), "unknown %s key %q%s (known: %s)", what, k, plugin.DidYouMean(k, known), strings.Join(known, ", "))
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func (l *loader) spec() *Spec {
	root := l.doc.Root
	s := &Spec{File: l.doc.File}
	l.keys(root, "", "top-level", topKeys)
	if v, _ := root.Get("version"); v != int64(1) {
		l.errf("version", "version must be the integer 1 (a process graph), got %s", packet.PyStr(v))
		return s
	}
	list := func(key string) []any {
		v, ok := root.Get(key)
		if !ok || v == nil {
			return nil
		}
		xs, ok := v.([]any)
		if !ok {
			l.errf(key, "%s must be a list", key)
			return nil
		}
		return xs
	}
	str := func(m *packet.Map, path string, keys ...string) string {
		for _, k := range keys {
			if v, ok := m.Get(k); ok {
				sv, isStr := v.(string)
				if !isStr || strings.TrimSpace(sv) == "" {
					l.errf(join(path, k), "%s must be a non-empty string", k)
					return ""
				}
				return strings.TrimSpace(sv)
			}
		}
		l.errf(path, "%s is required", keys[0])
		return ""
	}
	item := func(key string, i int, v any, known []string) (*packet.Map, string) {
		path := fmt.Sprintf("%s[%d]", key, i)
		m, ok := v.(*packet.Map)
		if !ok {
			l.errf(path, "%s must be a mapping", path)
			return nil, path
		}
		l.keys(m, path, strings.TrimSuffix(key, "es"), known)
		return m, path
	}
	seenP := map[string]bool{}
	for i, v := range list("processes") {
		m, path := item("processes", i, v, processKeys)
		if m == nil {
			continue
		}
		p := &Process{ID: str(m, path, "id", "process_id"), Graph: str(m, path, "graph"), Line: l.doc.PosOf(path).Line}
		if p.ID != "" && seenP[p.ID] {
			l.errf(path, "duplicate process id %q", p.ID)
		}
		seenP[p.ID] = true
		p.Abs = abs(p.Graph)
		s.Processes = append(s.Processes, p)
	}
	seenC := map[string]bool{}
	for i, v := range list("channels") {
		m, path := item("channels", i, v, channelKeys)
		if m == nil {
			continue
		}
		c := &Channel{ID: str(m, path, "id", "channel_id"), Transport: TransportSQLite, Line: l.doc.PosOf(path).Line}
		if _, ok := m.Get("transport"); ok {
			c.Transport = str(m, path, "transport")
		}
		switch c.Transport {
		case TransportSQLite:
			l.channelSQLite(m, path, c, str)
		case TransportNATS:
			l.channelNATS(m, path, c, str)
		case "":
		default:
			l.errf(join(path, "transport"), "unknown transport %q%s (known: %s, %s)", c.Transport,
				plugin.DidYouMean(c.Transport, []string{TransportSQLite, TransportNATS}), TransportSQLite, TransportNATS)
		}
		if c.ID != "" && seenC[c.ID] {
			l.errf(path, "duplicate channel id %q", c.ID)
		}
		seenC[c.ID] = true
		s.Channels = append(s.Channels, c)
	}
	seenL := map[[3]string]bool{}
	for i, v := range list("links") {
		m, path := item("links", i, v, linkKeys)
		if m == nil {
			continue
		}
		k := &Link{Producer: str(m, path, "producer"), Consumer: str(m, path, "consumer"), Channel: str(m, path, "channel"), Line: l.doc.PosOf(path).Line}
		key := [3]string{k.Producer, k.Consumer, k.Channel}
		if seenL[key] {
			l.errf(path, "duplicate link %s -> %s on %s", k.Producer, k.Consumer, k.Channel)
		}
		seenL[key] = true
		s.Links = append(s.Links, k)
	}
	return s
}

// channelSQLite reads upstream's keys: kind and path required,
// require_ack a real boolean.
func (l *loader) channelSQLite(m *packet.Map, path string, c *Channel, str func(*packet.Map, string, ...string) string) {
	for _, k := range natsKeys {
		if _, ok := m.Get(k); ok {
			l.errf(join(path, k), "%s is a key of transport: nats channels; this channel is transport: sqlite (a queue file)", k)
		}
	}
	c.Kind, c.Path = str(m, path, "kind"), str(m, path, "path")
	if ra, ok := m.Get("require_ack"); ok {
		b, isBool := ra.(bool)
		if !isBool {
			l.errf(join(path, "require_ack"), "require_ack must be true or false, got %s", packet.PyStr(ra))
		}
		c.RequireAck = b
	}
	c.Abs = abs(c.Path)
}

// channelNATS reads subject (a literal publish subject), stream (a stream
// name) and url (default NATS_URL, else DefaultNATSURL).
func (l *loader) channelNATS(m *packet.Map, path string, c *Channel, str func(*packet.Map, string, ...string) string) {
	for _, k := range sqliteKeys {
		if _, ok := m.Get(k); ok {
			l.errf(join(path, k), "%s is a key of transport: sqlite channels (a queue file); a transport: nats channel has subject, stream and url", k)
		}
	}
	c.Subject, c.Stream = str(m, path, "subject"), str(m, path, "stream")
	if c.Subject != "" {
		if err := checkSubject(c.Subject); err != nil {
			l.errf(join(path, "subject"), "subject %q: %v", c.Subject, err)
		}
	}
	if c.Stream != "" && strings.ContainsAny(c.Stream, " .*>\t") {
		l.errf(join(path, "stream"), "stream %q: a stream name has no dots, wildcards or spaces", c.Stream)
	}
	if _, ok := m.Get("url"); ok {
		c.URL = str(m, path, "url")
	} else if u, ok := l.getenv("NATS_URL"); ok && strings.TrimSpace(u) != "" {
		c.URL = strings.TrimSpace(u)
	} else {
		c.URL = DefaultNATSURL
	}
}

// checkSubject accepts a literal subject a sink can publish on: dot
// separated, no empty token, no wildcard, no white space.
func checkSubject(s string) error {
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("white space in a subject")
	}
	for _, tok := range strings.Split(s, ".") {
		switch tok {
		case "":
			return fmt.Errorf("empty token (leading, trailing or double dot)")
		case "*", ">":
			return fmt.Errorf("wildcard %q: a channel is one literal subject", tok)
		}
	}
	return nil
}

// abs resolves p against the working directory (where the queue nodes
// open their files), not against a repository root (D-PG-1).
func abs(p string) string {
	if p == "" {
		return ""
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	return a
}

// Report is what validation found, in upstream's field names.
type Report struct {
	SpecPath      string            `json:"spec"`
	ProcessCount  int               `json:"process_count"`
	ChannelCount  int               `json:"channel_count"`
	LinkCount     int               `json:"link_count"`
	ProcessGraphs map[string]string `json:"resolved_process_graphs"`
	ChannelPaths  map[string]string `json:"resolved_channel_paths"`
	plans         map[string]*graph.Plan
	order         []string
}

// Loader loads and validates one process's graph (the engine, with the
// binary's registry and policy).
type Loader func(path string) (*graph.Plan, graph.Diags, error)

// Validate checks s with upstream's rules and ours. Every process graph is
// loaded and validated through load; their diagnostics are included.
func Validate(s *Spec, load Loader) (*Report, graph.Diags) {
	v := &validator{s: s}
	if len(s.Processes) == 0 {
		v.errf(0, "processes", "a process graph needs at least one process")
	}
	if len(s.Channels) == 0 {
		v.errf(0, "channels", "a process graph needs at least one channel")
	}
	if len(s.Links) == 0 {
		v.errf(0, "links", "a process graph needs at least one link")
	}
	procs := map[string]*Process{}
	for _, p := range s.Processes {
		procs[p.ID] = p
	}
	chans := map[string]*Channel{}
	byPath := map[string]*Channel{}
	bySubject := map[[3]string]*Channel{}
	for _, c := range s.Channels {
		chans[c.ID] = c
		if c.Transport == TransportNATS {
			key := [3]string{c.URL, c.Stream, c.Subject}
			if o := bySubject[key]; o != nil {
				v.errf(c.Line, "channel "+c.ID, "uses the same stream and subject as channel %q (%s): two channels on one subject would mix their packets", o.ID, c.Where())
			}
			bySubject[key] = c
			continue
		}
		if c.Kind != KindSQLiteQueue {
			v.errf(c.Line, "channel "+c.ID, "kind %q is not supported (supported: %s)", c.Kind, KindSQLiteQueue)
		}
		if o := byPath[c.Abs]; o != nil && c.Abs != "" {
			v.errf(c.Line, "channel "+c.ID, "uses the same file as channel %q (%s): two channels on one queue would mix their packets", o.ID, c.Abs)
		}
		byPath[c.Abs] = c
	}
	uses := map[string]int{}
	linked := map[string]bool{}
	for _, k := range s.Links {
		subj := fmt.Sprintf("link %s -> %s", k.Producer, k.Consumer)
		if procs[k.Producer] == nil {
			v.errf(k.Line, subj, "unknown producer process %q", k.Producer)
		}
		if procs[k.Consumer] == nil {
			v.errf(k.Line, subj, "unknown consumer process %q", k.Consumer)
		}
		if chans[k.Channel] == nil {
			v.errf(k.Line, subj, "unknown channel %q", k.Channel)
		}
		if k.Producer == k.Consumer {
			v.errf(k.Line, subj, "producer and consumer are the same process")
		}
		uses[k.Channel]++
		linked[k.Producer], linked[k.Consumer] = true, true
	}
	for _, c := range s.Channels {
		if n := uses[c.ID]; n != 1 {
			v.errf(c.Line, "channel "+c.ID, "is used by %d links; a channel links exactly one producer to one consumer", n)
		}
	}
	for _, p := range s.Processes {
		if !linked[p.ID] {
			v.warnf(p.Line, "process "+p.ID, "is in no link: it runs, but nothing connects it to the others")
		}
	}
	order, cycle := topo(s)
	if cycle != nil {
		v.errf(0, "links", "the processes form a cycle (%s): a process graph must be acyclic", strings.Join(cycle, " -> "))
	}
	rep := &Report{SpecPath: abs(s.File), ProcessCount: len(s.Processes), ChannelCount: len(s.Channels), LinkCount: len(s.Links),
		ProcessGraphs: map[string]string{}, ChannelPaths: map[string]string{}, plans: map[string]*graph.Plan{}, order: order}
	for _, c := range s.Channels {
		rep.ChannelPaths[c.ID] = c.Where()
	}
	for _, p := range s.Processes {
		rep.ProcessGraphs[p.ID] = p.Abs
		plan, diags, err := load(p.Graph)
		v.diags = append(v.diags, diags...)
		if err != nil || plan == nil {
			if !diags.HasErrors() {
				msg := "is not a valid graph"
				if err != nil {
					msg = err.Error()
				}
				v.errf(p.Line, "process "+p.ID, "graph %s: %s", p.Graph, msg)
			} else {
				v.errf(p.Line, "process "+p.ID, "graph %s is invalid (see above)", p.Graph)
			}
			continue
		}
		if plan.Graph.Version != 2 {
			v.errf(p.Line, "process "+p.ID, "graph %s is a v1 job graph: a process must be a v2 node graph", p.Graph)
			continue
		}
		rep.plans[p.ID] = plan
	}
	// The bridge contract: each link's producer writes the channel's file,
	// its consumer reads it (and acks it when require_ack).
	for _, k := range s.Links {
		c := chans[k.Channel]
		if c == nil {
			continue
		}
		subj := fmt.Sprintf("link %s -> %s", k.Producer, k.Consumer)
		if c.Transport == TransportNATS {
			v.natsBridge(k, c, rep.plans[k.Producer], rep.plans[k.Consumer], shared(s, c))
			continue
		}
		if plan := rep.plans[k.Producer]; plan != nil && !hasQueueNode(plan, queueSink, c.Abs) {
			v.errf(k.Line, subj, "producer %q has no SqliteQueueSink writing %s (channel %q)%s", k.Producer, c.Path, c.ID, queuePaths(plan, queueSink))
		}
		if plan := rep.plans[k.Consumer]; plan != nil {
			if !hasQueueNode(plan, queueSource, c.Abs) {
				v.errf(k.Line, subj, "consumer %q has no SqliteQueueSource reading %s (channel %q)%s", k.Consumer, c.Path, c.ID, queuePaths(plan, queueSource))
			}
			if c.RequireAck && !hasQueueNode(plan, queueAck, c.Abs) {
				v.errf(k.Line, subj, "channel %q requires acks, but consumer %q has no SqliteQueueAckSink on %s", c.ID, k.Consumer, c.Path)
			}
		}
	}
	graph.SortDiags(v.diags)
	return rep, v.diags
}

type validator struct {
	s     *Spec
	diags graph.Diags
}

func (v *validator) errf(line int, subject, format string, args ...any) {
	v.diags = append(v.diags, graph.Diag{File: v.s.File, Line: line, Severity: graph.SevError, Subject: subject, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(line int, subject, format string, args ...any) {
	v.diags = append(v.diags, graph.Diag{File: v.s.File, Line: line, Severity: graph.SevWarning, Subject: subject, Msg: fmt.Sprintf(format, args...)})
}

// shared reports whether another nats channel uses c's stream: then a
// consumer reading the whole stream would take the other's packets too.
func shared(s *Spec, c *Channel) bool {
	for _, o := range s.Channels {
		if o != c && o.Transport == TransportNATS && o.URL == c.URL && o.Stream == c.Stream {
			return true
		}
	}
	return false
}

// natsBridge is a nats channel's bridge contract: the producer has a
// JetStreamSink publishing the channel's subject into its stream on its
// server, the consumer a JetStreamSource reading that stream there (only
// the channel's subject, when another channel shares the stream).
func (v *validator) natsBridge(k *Link, c *Channel, prod, cons *graph.Plan, shared bool) {
	subj := fmt.Sprintf("link %s -> %s", k.Producer, k.Consumer)
	cfg := func(pn *graph.PlanNode, key string) string {
		if pn.Config == nil {
			return ""
		}
		s, _ := pn.Config.GetString(key)
		return strings.TrimSpace(s)
	}
	var why []string
	match := func(pn *graph.PlanNode, want map[string]string) bool {
		var bad []string
		for _, key := range sortedKeys(want) {
			if got := cfg(pn, key); got != want[key] {
				if key == "url" {
					got, want[key] = redact.URL(got), redact.URL(want[key])
				}
				bad = append(bad, fmt.Sprintf("%s %q, want %q", key, got, want[key]))
			}
		}
		if len(bad) > 0 {
			why = append(why, fmt.Sprintf("node %q has %s", pn.ID, strings.Join(bad, ", ")))
		}
		return len(bad) == 0
	}
	find := func(plan *graph.Plan, name string, want func() map[string]string) bool {
		why = why[:0]
		for _, pn := range plan.Nodes {
			if pn.Entry != nil && pn.Entry.Name == name && match(pn, want()) {
				return true
			}
		}
		return false
	}
	hint := func() string {
		if len(why) == 0 {
			return ""
		}
		return " (" + strings.Join(why, "; ") + ")"
	}
	if prod != nil && !find(prod, jsSink, func() map[string]string {
		return map[string]string{"subject": c.Subject, "stream": c.Stream, "url": c.URL}
	}) {
		v.errf(k.Line, subj, "producer %q has no JetStreamSink publishing subject %s to stream %s at %s (channel %q)%s",
			k.Producer, c.Subject, c.Stream, redact.URL(c.URL), c.ID, hint())
	}
	if cons == nil {
		return
	}
	ok := find(cons, jsSource, func() map[string]string {
		return map[string]string{"stream": c.Stream, "url": c.URL}
	})
	if !ok {
		v.errf(k.Line, subj, "consumer %q has no JetStreamSource reading stream %s at %s (channel %q)%s",
			k.Consumer, c.Stream, redact.URL(c.URL), c.ID, hint())
		return
	}
	for _, pn := range cons.Nodes {
		if pn.Entry == nil || pn.Entry.Name != jsSource || cfg(pn, "stream") != c.Stream || cfg(pn, "url") != c.URL {
			continue
		}
		switch f := cfg(pn, "filter_subject"); {
		case f != "" && f != c.Subject:
			v.errf(k.Line, subj, "consumer %q node %q filters subject %q: channel %q is subject %s", k.Consumer, pn.ID, f, c.ID, c.Subject)
		case f == "" && shared:
			v.errf(k.Line, subj, "consumer %q node %q reads all of stream %s, which other channels share: set filter_subject: %s", k.Consumer, pn.ID, c.Stream, c.Subject)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func hasQueueNode(plan *graph.Plan, name, path string) bool {
	for _, pn := range plan.Nodes {
		if pn.Entry != nil && pn.Entry.Name == name && abs(queuePath(pn)) == path {
			return true
		}
	}
	return false
}

func queuePath(pn *graph.PlanNode) string {
	if pn.Config == nil {
		return ""
	}
	s, _ := pn.Config.GetString("path")
	return s
}

// queuePaths lists what the graph's nodes of that plugin do use, as a hint.
func queuePaths(plan *graph.Plan, name string) string {
	var ps []string
	for _, pn := range plan.Nodes {
		if pn.Entry != nil && pn.Entry.Name == name {
			ps = append(ps, fmt.Sprintf("node %q uses %s", pn.ID, abs(queuePath(pn))))
		}
	}
	if len(ps) == 0 {
		return ""
	}
	return " (" + strings.Join(ps, "; ") + ")"
}

// topo orders processes producers first; a cycle is returned as a path.
func topo(s *Spec) (order []string, cycle []string) {
	next := map[string][]string{}
	for _, k := range s.Links {
		next[k.Producer] = append(next[k.Producer], k.Consumer)
	}
	for _, n := range next {
		sort.Strings(n)
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(id string) bool
	visit = func(id string) bool {
		color[id] = grey
		stack = append(stack, id)
		for _, n := range next[id] {
			switch color[n] {
			case grey:
				for i, x := range stack {
					if x == n {
						cycle = append(append([]string(nil), stack[i:]...), n)
					}
				}
				return false
			case white:
				if !visit(n) {
					return false
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
		order = append(order, id)
		return true
	}
	for _, p := range s.Processes {
		if color[p.ID] == white && !visit(p.ID) {
			return nil, cycle
		}
	}
	// reverse post-order: producers before consumers
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	return order, nil
}

// Executor runs one process's graph until it ends or ctx is cancelled
// and returns its report status (ok, degraded, error).
type Executor func(ctx context.Context, id string, plan *graph.Plan) (status string, err error)

// Result is how one process ended.
type Result struct {
	ID     string `json:"id"`
	Runs   int    `json:"runs"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Run runs every process of a validated report at once, in this process.
// A consumer that ends while one of its producers still runs (a queue
// source that drained what was there) is started again, so a finite
// pipeline ends only when each consumer has run once after all its
// producers ended: nothing written is left unread. An error in one
// process does not stop the others. ctx cancellation stops them all.
func Run(ctx context.Context, s *Spec, rep *Report, exec Executor, rerunDelay time.Duration) []Result {
	producers := map[string][]string{}
	for _, k := range s.Links {
		producers[k.Consumer] = append(producers[k.Consumer], k.Producer)
	}
	done := map[string]chan struct{}{}
	for _, p := range s.Processes {
		done[p.ID] = make(chan struct{})
	}
	allDone := func(ids []string) bool {
		for _, id := range ids {
			select {
			case <-done[id]:
			default:
				return false
			}
		}
		return true
	}
	results := make([]Result, len(s.Processes))
	var wg sync.WaitGroup
	for i, p := range s.Processes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[p.ID])
			r := &results[i]
			r.ID = p.ID
			for {
				final := allDone(producers[p.ID])
				r.Runs++
				st, err := exec(ctx, p.ID, rep.plans[p.ID])
				r.Status = st
				if err != nil {
					r.Status, r.Error = "error", err.Error()
					return
				}
				if final || ctx.Err() != nil || st == "error" {
					return
				}
				t := time.NewTimer(rerunDelay)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		}()
	}
	wg.Wait()
	return results
}

// NATSChannel is a nats channel with its producer's JetStreamSink, whose
// config (stream settings, credentials) run uses to provision the stream
// before any process starts.
type NATSChannel struct {
	Channel  *Channel
	Producer string
	Node     string      // the JetStreamSink's node id
	Config   *packet.Map // its config, interpolation resolved
}

// NATSChannels lists the nats channels of a validated spec.
func (r *Report) NATSChannels(s *Spec) []NATSChannel {
	chans := map[string]*Channel{}
	for _, c := range s.Channels {
		chans[c.ID] = c
	}
	var out []NATSChannel
	for _, k := range s.Links {
		c := chans[k.Channel]
		plan := r.plans[k.Producer]
		if c == nil || c.Transport != TransportNATS || plan == nil {
			continue
		}
		for _, pn := range plan.Nodes {
			if pn.Entry == nil || pn.Entry.Name != jsSink || pn.Config == nil {
				continue
			}
			subj, _ := pn.Config.GetString("subject")
			st, _ := pn.Config.GetString("stream")
			if strings.TrimSpace(subj) == c.Subject && strings.TrimSpace(st) == c.Stream {
				out = append(out, NATSChannel{Channel: c, Producer: k.Producer, Node: pn.ID, Config: pn.Config})
				break
			}
		}
	}
	return out
}

// Order is the processes, producers before consumers.
func (r *Report) Order() []string { return r.order }
