// Package graphtest runs graph unit tests (`schnitzel test`): YAML files
// that name a graph, feed packets to its sources or nodes, and state what
// its sinks or nodes must emit. Live sources and sinks are replaced by test
// doubles, so a test runs offline, fast and the same every time — the
// shape of `benthos test` and `vector test`.
package graphtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Suffix names test files: a directory argument is searched for them.
const Suffix = "_test.yaml"

const (
	staticSource = "schnitzel_stream.nodes.dev:StaticSource"
	captureSink  = "schnitzel_stream.test:Capture"
	filterNode   = "schnitzel_stream.nodes.map:Filter"
	violations   = "\x00violations:" // capture key prefix of condition failures
)

// File is one test file.
type File struct {
	Path  string
	Graph string            // the graph under test, relative to the file
	Env   map[string]string // ${oc.env:...} values for the graph (the process's environment is not read)
	Cases []Case
}

// Case is one test.
type Case struct {
	Name    string
	Line    int
	Inputs  map[string][]any // node id -> packets (StaticSource's item shape)
	Expect  map[string]Expect
	Timeout time.Duration
}

// Expect is what one node must emit (a sink: receive).
type Expect struct {
	Count   *int  // exact number of packets, when set
	Packets []any // expected packets (kind, source_id, payload, meta, ts), in order unless Order is any
	Order   string
	Match   string // subset (default): given fields and map keys must match; exact: whole values
	// Condition is an expression (docs/processing.md) every packet must
	// make true; it runs in the graph as a Filter node of its negation.
	Condition string
}

type rawFile struct {
	Graph string            `yaml:"graph"`
	Env   map[string]string `yaml:"env"`
	Tests []yaml.Node       `yaml:"tests"`
}

type rawCase struct {
	Name       string                    `yaml:"name"`
	Inputs     map[string][]any          `yaml:"inputs"`
	Expect     map[string]rawExpectation `yaml:"expect"`
	TimeoutSec float64                   `yaml:"timeout_sec"`
}

type rawExpectation struct {
	Condition string `yaml:"condition"`
	Count     *int   `yaml:"count"`
	Packets   []any  `yaml:"packets"`
	Order     string `yaml:"order"`
	Match     string `yaml:"match"`
}

// LoadFile reads a test file; errors name the file and line.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw rawFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if raw.Graph == "" {
		return nil, fmt.Errorf("%s: no graph: the file must name the graph under test (graph: FILE, relative to the test file)", path)
	}
	if len(raw.Tests) == 0 {
		return nil, fmt.Errorf("%s: no tests: the file must list its cases under the tests key", path)
	}
	f := &File{Path: path, Graph: raw.Graph, Env: raw.Env}
	seen := map[string]int{}
	for i, n := range raw.Tests {
		var rc rawCase
		if err := n.Decode(&rc); err != nil {
			return nil, fmt.Errorf("%s:%d: tests[%d]: %w", path, n.Line, i, err)
		}
		if err := strictKeys(&n, "name", "inputs", "expect", "timeout_sec"); err != nil {
			return nil, fmt.Errorf("%s:%d: tests[%d]: %w", path, n.Line, i, err)
		}
		if rc.Name == "" {
			rc.Name = fmt.Sprintf("tests[%d]", i)
		}
		if l, dup := seen[rc.Name]; dup {
			return nil, fmt.Errorf("%s:%d: test %q: the name is used at line %d too", path, n.Line, rc.Name, l)
		}
		seen[rc.Name] = n.Line
		if len(rc.Expect) == 0 {
			return nil, fmt.Errorf("%s:%d: test %q: no expect: a test must state what some node emits", path, n.Line, rc.Name)
		}
		c := Case{Name: rc.Name, Line: n.Line, Inputs: rc.Inputs, Expect: map[string]Expect{}, Timeout: 10 * time.Second}
		if rc.TimeoutSec > 0 {
			c.Timeout = time.Duration(rc.TimeoutSec * float64(time.Second))
		}
		for id, re := range rc.Expect {
			e := Expect{Count: re.Count, Packets: re.Packets, Order: re.Order, Match: re.Match, Condition: re.Condition}
			switch e.Order {
			case "":
				e.Order = "strict"
			case "strict", "any":
			default:
				return nil, fmt.Errorf("%s:%d: test %q: expect.%s.order: %q is not strict or any", path, n.Line, rc.Name, id, e.Order)
			}
			switch e.Match {
			case "":
				e.Match = "subset"
			case "subset", "exact":
			default:
				return nil, fmt.Errorf("%s:%d: test %q: expect.%s.match: %q is not subset or exact", path, n.Line, rc.Name, id, e.Match)
			}
			if e.Count == nil && e.Packets == nil && e.Condition == "" {
				return nil, fmt.Errorf("%s:%d: test %q: expect.%s: give count, packets, condition or several", path, n.Line, rc.Name, id)
			}
			c.Expect[id] = e
		}
		f.Cases = append(f.Cases, c)
	}
	return f, nil
}

// strictKeys refuses unknown keys of a mapping node (a typo such as
// `expcet:` must not make a test that checks nothing).
func strictKeys(n *yaml.Node, known ...string) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("a test is a mapping (name, inputs, expect)")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		ok := false
		for _, kk := range known {
			ok = ok || k == kk
		}
		if !ok {
			return fmt.Errorf("unknown key %q%s (known: %s)", k, plugin.DidYouMean(k, known), strings.Join(known, ", "))
		}
	}
	return nil
}

// Find expands paths: files as given, directories searched for *_test.yaml.
func Find(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), Suffix) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Result is one case's outcome.
type Result struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Name     string   `json:"name"`
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
	Seconds  float64  `json:"seconds"`
}

// Options are what a run needs from the binary.
type Options struct {
	Registry *plugin.Registry
	Getenv   func(string) string // the plugin policy variables
	Prefixes []string
}

// Run runs every case of f.
func Run(ctx context.Context, f *File, opts Options) []Result {
	var out []Result
	for _, c := range f.Cases {
		start := time.Now()
		fails := runCase(ctx, f, c, opts)
		out = append(out, Result{File: f.Path, Line: c.Line, Name: c.Name, Pass: len(fails) == 0, Failures: fails,
			Seconds: time.Since(start).Seconds()})
	}
	return out
}

// capture holds what the Capture doubles received, per node id.
type capture struct {
	mu  sync.Mutex
	got map[string][]any
}

func (c *capture) add(id string, p *packet.Packet) {
	b, err := packet.AppendPacketJSON(nil, p, packet.JSONOptions{})
	var v any
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		v = map[string]any{"kind": p.Kind, "source_id": p.SourceID, "error": "not portable: " + err.Error()}
	}
	c.mu.Lock()
	c.got[id] = append(c.got[id], v)
	c.mu.Unlock()
}

type captureCfg struct {
	Target string `yaml:"target" doc:"The node id whose packets are recorded."`
}

type captureNode struct {
	id  string
	cap *capture
}

func (n *captureNode) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	n.cap.add(n.id, p)
	return out.Emit(p) // a sink that forwarded still feeds what follows it
}

func runCase(ctx context.Context, f *File, c Case, opts Options) []string {
	graphPath := f.Graph
	if !filepath.IsAbs(graphPath) {
		graphPath = filepath.Join(filepath.Dir(f.Path), graphPath)
	}
	lookup := func(k string) (string, bool) { v, ok := f.Env[k]; return v, ok }
	g, diags := graph.LoadFileLimited(graphPath, lookup, graph.Limits{})
	if g == nil || diags.HasErrors() {
		return []string{fmt.Sprintf("graph %s does not load:\n%s", graphPath, diagText(diags))}
	}
	if g.Version != 2 {
		return []string{fmt.Sprintf("graph %s is a v1 job graph: tests run v2 node graphs", graphPath)}
	}
	cap := &capture{got: map[string][]any{}}
	reg := opts.Registry.Clone()
	plugin.Register(reg, plugin.Spec[captureCfg]{
		Name: captureSink, Role: plugin.RoleSink,
		Summary: "Test double: records what a node receives (schnitzel test).",
		NewProcessor: func(cfg captureCfg, _ plugin.Env) (plugin.Processor, error) {
			return &captureNode{id: cfg.Target, cap: cap}, nil
		},
	})
	var fails []string
	for id := range c.Inputs {
		if g.NodeByID(id) == nil {
			fails = append(fails, fmt.Sprintf("inputs.%s: the graph has no node %q", id, id))
		}
	}
	for id := range c.Expect {
		if g.NodeByID(id) == nil {
			fails = append(fails, fmt.Sprintf("expect.%s: the graph has no node %q", id, id))
		}
	}
	if len(fails) > 0 {
		return fails
	}
	for _, n := range append([]*graph.Node(nil), g.Nodes...) {
		pk, given := c.Inputs[n.ID]
		switch {
		case n.Kind == graph.KindSource && (given || n.Plugin != staticSource):
			// A live source (ticker, video, queue, broker) is replaced by
			// the test's packets, or by none.
			cfg, err := staticConfig(pk)
			if err != nil {
				return []string{fmt.Sprintf("inputs.%s: %v", n.ID, err)}
			}
			n.Plugin, n.Config = staticSource, cfg
		case given:
			// Packets fed into the middle of the graph come from an added source.
			cfg, err := staticConfig(pk)
			if err != nil {
				return []string{fmt.Sprintf("inputs.%s: %v", n.ID, err)}
			}
			feed := "__test_input_" + n.ID
			g.AddNode(feed, graph.KindSource, staticSource, cfg)
			g.AddEdge(feed, n.ID)
		}
		e, want := c.Expect[n.ID]
		if n.Kind == graph.KindSink {
			n.Plugin, n.Config = captureSink, packet.MapOf("target", n.ID)
		} else if want {
			rec := "__test_capture_" + n.ID
			g.AddNode(rec, graph.KindSink, captureSink, packet.MapOf("target", n.ID))
			g.AddEdge(n.ID, rec)
		}
		if want && e.Condition != "" {
			// Packets for which the condition is not true (or fails)
			// reach a second recorder; the case wants none there.
			if _, ok := reg.Lookup(filterNode); !ok {
				return []string{fmt.Sprintf("expect.%s.condition needs the %s node, which this binary lacks", n.ID, filterNode)}
			}
			if n.Kind == graph.KindSink {
				n.Kind = graph.KindNode // the recorder forwards to the condition check
			}
			neg, rec := "__test_condition_"+n.ID, "__test_violations_"+n.ID
			g.AddNode(neg, graph.KindNode, filterNode, packet.MapOf("condition", "!("+e.Condition+")", "on_error", "pass"))
			g.AddNode(rec, graph.KindSink, captureSink, packet.MapOf("target", violations+n.ID))
			g.AddEdge(n.ID, neg)
			g.AddEdge(neg, rec)
		}
	}
	eopts := engine.Options{Registry: reg, Getenv: opts.Getenv, Prefixes: append(opts.Prefixes, "schnitzel_stream.test"),
		LookupEnv: lookup, Stdout: &bytes.Buffer{}}
	plan, vdiags, err := engine.Validate(g, diags, eopts)
	if err != nil {
		return []string{fmt.Sprintf("graph %s with its test doubles is invalid:\n%s", graphPath, diagText(vdiags))}
	}
	rctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	rep, err := engine.Execute(rctx, plan, graphPath, eopts)
	if err != nil {
		return []string{fmt.Sprintf("graph %s: %v", graphPath, err)}
	}
	if rctx.Err() != nil {
		fails = append(fails, fmt.Sprintf("the run did not end within %s (timeout_sec): a source that never ends?", c.Timeout))
	}
	if rep.Error != nil {
		fails = append(fails, fmt.Sprintf("node %q failed (%s): %s", rep.Error.Node, rep.Error.Phase, rep.Error.Message))
	}
	ids := make([]string, 0, len(c.Expect))
	for id := range c.Expect {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fails = append(fails, check(id, c.Expect[id], cap.got[id])...)
		if cond := c.Expect[id].Condition; cond != "" {
			if bad := cap.got[violations+id]; len(bad) > 0 {
				fails = append(fails, fmt.Sprintf("%s: %d packet(s) do not satisfy condition %q%s", id, len(bad), cond, listing(bad)))
			}
		}
	}
	return fails
}

// staticConfig turns test packets into a StaticSource config through the
// one packet JSON decoder.
func staticConfig(pk []any) (*packet.Map, error) {
	if pk == nil {
		pk = []any{}
	}
	b, err := json.Marshal(jsonable(pk))
	if err != nil {
		return nil, err
	}
	v, err := packet.DecodeJSON(b)
	if err != nil {
		return nil, err
	}
	return packet.MapOf("packets", v), nil
}

// jsonable converts YAML's map[string]any / map[any]any trees for JSON.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonable(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// normal is v as encoding/json would give it back (numbers float64).
func normal(v any) any {
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}

func check(id string, e Expect, got []any) []string {
	var fails []string
	if e.Count != nil && len(got) != *e.Count {
		fails = append(fails, fmt.Sprintf("%s: got %d packets, want %d%s", id, len(got), *e.Count, listing(got)))
	}
	if e.Packets == nil {
		return fails
	}
	want := make([]any, len(e.Packets))
	for i, w := range e.Packets {
		want[i] = normal(w)
	}
	if e.Order == "strict" {
		if e.Count == nil && len(got) != len(want) {
			fails = append(fails, fmt.Sprintf("%s: got %d packets, want %d%s", id, len(got), len(want), listing(got)))
		}
		for i := range want {
			if i >= len(got) {
				break
			}
			if d := diff("", want[i], got[i], e.Match == "exact"); d != "" {
				fails = append(fails, fmt.Sprintf("%s: packet %d: %s\n      got: %s", id, i, d, compact(got[i])))
			}
		}
		return fails
	}
	// order: any — each expected packet matches a distinct received one.
	used := make([]bool, len(got))
	for i, w := range want {
		found := false
		for j, g := range got {
			if !used[j] && diff("", w, g, e.Match == "exact") == "" {
				used[j], found = true, true
				break
			}
		}
		if !found {
			fails = append(fails, fmt.Sprintf("%s: expected packet %d not received: %s%s", id, i, compact(w), listing(got)))
		}
	}
	return fails
}

// diff returns the first difference between want and got: for maps the
// keys of want (and, exact at the top level below fields, all keys).
func diff(path string, want, got any, exact bool) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %s, want an object", at(path), compact(got))
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("%s: missing (want %s)", join(path, k), compact(w[k]))
			}
			// exact compares whole values of the fields the test names, not
			// the packet's own fields it leaves out (packet_id, ts).
			if d := diff(join(path, k), w[k], gv, exact); d != "" {
				return d
			}
		}
		if exact && path != "" {
			for k := range g {
				if _, ok := w[k]; !ok {
					return fmt.Sprintf("%s: unexpected key (match: exact)", join(path, k))
				}
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %s, want %s", at(path), compact(got), compact(want))
		}
		for i := range w {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], exact); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Sprintf("%s: got %s, want %s", at(path), compact(got), compact(want))
	}
	return ""
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func at(path string) string {
	if path == "" {
		return "packet"
	}
	return path
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 1000 {
		return string(b[:1000]) + "..."
	}
	return string(b)
}

func listing(got []any) string {
	if len(got) == 0 {
		return ""
	}
	var sb strings.Builder
	for i, g := range got {
		if i == 5 {
			fmt.Fprintf(&sb, "\n      ... %d more", len(got)-5)
			break
		}
		fmt.Fprintf(&sb, "\n      got[%d]: %s", i, compact(g))
	}
	return sb.String()
}

func diagText(d graph.Diags) string {
	var sb strings.Builder
	for _, x := range d {
		sb.WriteString("    " + x.String() + "\n")
	}
	return strings.TrimRight(sb.String(), "\n")
}
