// Package procgraph reads, validates and runs process graphs: upstream's
// `version: 1` files that link several graphs (processes) through
// channels (SQLite queue files). Upstream only validates them; here they
// also run, every process graph in this process under one supervisor.
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
)

// The queue nodes a link's bridge contract names (canonical names; an
// alias in a graph resolves to the same entry).
const (
	queueSink   = "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink"
	queueSource = "schnitzel_stream.nodes.durable_sqlite:SqliteQueueSource"
	queueAck    = "schnitzel_stream.nodes.durable_sqlite:SqliteQueueAckSink"
)

// KindSQLiteQueue is the one channel kind (upstream's).
const KindSQLiteQueue = "sqlite_queue"

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

// Channel is a queue file two processes share.
type Channel struct {
	ID         string
	Kind       string
	Path       string
	Abs        string
	RequireAck bool
	Line       int
}

// Link says producer writes the channel and consumer reads it.
type Link struct {
	Producer, Consumer, Channel string
	Line                        int
}

var (
	topKeys     = []string{"version", "processes", "channels", "links", "config"}
	processKeys = []string{"id", "process_id", "graph"}
	channelKeys = []string{"id", "channel_id", "kind", "path", "require_ack"}
	linkKeys    = []string{"producer", "consumer", "channel"}
)

// LoadFile reads a process graph file. getenv answers ${oc.env:...}.
func LoadFile(path string, getenv func(string) (string, bool)) (*Spec, graph.Diags) {
	doc, diags := graph.LoadDocumentFile(path, getenv, graph.Limits{})
	if doc == nil {
		return nil, diags
	}
	l := &loader{doc: doc, diags: diags}
	s := l.spec()
	if l.diags.HasErrors() {
		return nil, l.diags
	}
	return s, l.diags
}

type loader struct {
	doc   *graph.Document
	diags graph.Diags
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
		c := &Channel{ID: str(m, path, "id", "channel_id"), Kind: str(m, path, "kind"), Path: str(m, path, "path"), Line: l.doc.PosOf(path).Line}
		if ra, ok := m.Get("require_ack"); ok {
			b, isBool := ra.(bool)
			if !isBool {
				l.errf(join(path, "require_ack"), "require_ack must be true or false, got %s", packet.PyStr(ra))
			}
			c.RequireAck = b
		}
		if c.ID != "" && seenC[c.ID] {
			l.errf(path, "duplicate channel id %q", c.ID)
		}
		seenC[c.ID] = true
		c.Abs = abs(c.Path)
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
	for _, c := range s.Channels {
		chans[c.ID] = c
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
		rep.ChannelPaths[c.ID] = c.Abs
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

// Order is the processes, producers before consumers.
func (r *Report) Order() []string { return r.order }
