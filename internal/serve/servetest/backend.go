// Package servetest holds a recording, in-memory api.Backend for the
// tests of the packages built on it (fleet, compat): it validates what it
// is given through the real engine, but runs nothing.
package servetest

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
)

// Call is one mutating call the Backend received.
type Call struct {
	Op   string // apply, delete, start, stop, restart
	Name string
	YAML []byte
	Opts serve.ApplyOptions
}

// Backend is an api.Backend over a map. Apply validates with Engine when
// it has a Registry (the graph's Env first, then nothing), and a valid
// graph is "running" at once.
type Backend struct {
	Engine engine.Options

	mu     sync.Mutex
	graphs map[string]*entry
	calls  []Call
	fail   map[string]error
}

type entry struct {
	st   serve.GraphStatus
	yaml []byte
	env  map[string]string
	rep  *engine.Report
}

var _ api.Backend = (*Backend)(nil)

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// New returns an empty Backend validating with opts.
func New(opts engine.Options) *Backend {
	return &Backend{Engine: opts, graphs: map[string]*entry{}, fail: map[string]error{}}
}

// Calls returns the mutating calls so far.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// FailApply makes the next Apply of name return err.
func (b *Backend) FailApply(name string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail[name] = err
}

// Put adds a graph as if it had been applied (origin, state).
func (b *Backend) Put(name, origin string, state serve.State, yaml []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.graphs[name] = &entry{st: serve.GraphStatus{Name: name, State: state, Desired: "running", Origin: origin, Since: time.Now(), File: name + ".yaml"}, yaml: yaml}
}

// SetStatus changes a graph's status (for failures, rates, reports).
func (b *Backend) SetStatus(name string, f func(*serve.GraphStatus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.graphs[name]; e != nil {
		f(&e.st)
	}
}

// SetReport sets a graph's last report.
func (b *Backend) SetReport(name string, rep *engine.Report) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.graphs[name]; e != nil {
		e.rep = rep
	}
}

func (b *Backend) List() []serve.GraphStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]serve.GraphStatus, 0, len(b.graphs))
	for _, e := range b.graphs {
		out = append(out, e.st)
	}
	slices.SortFunc(out, func(a, c serve.GraphStatus) int { return strings.Compare(a.Name, c.Name) })
	return out
}

func (b *Backend) Get(name string) (*serve.GraphDetail, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.graphs[name]
	if e == nil {
		return nil, fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	return &serve.GraphDetail{GraphStatus: e.st, YAML: string(e.yaml), Env: maps.Clone(e.env), Report: e.rep}, nil
}

func (b *Backend) validate(name string, yaml []byte, env map[string]string) (engine.Diags, error) {
	if b.Engine.Registry == nil {
		return nil, nil
	}
	opts := b.Engine
	opts.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	_, diags, err := engine.Load(name+".yaml", yaml, opts)
	return diags, err
}

func (b *Backend) Apply(name string, yaml []byte, o serve.ApplyOptions) (serve.ApplyResult, error) {
	if !nameRe.MatchString(name) || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		return serve.ApplyResult{}, fmt.Errorf("%q: %w", name, serve.ErrBadName)
	}
	diags, err := b.validate(name, yaml, o.Env)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, Call{Op: "apply", Name: name, YAML: slices.Clone(yaml), Opts: o})
	if err != nil {
		return serve.ApplyResult{}, err
	}
	if ferr := b.fail[name]; ferr != nil {
		delete(b.fail, name)
		return serve.ApplyResult{}, ferr
	}
	origin := o.Origin
	if origin == "" {
		origin = "api"
	}
	state := serve.StateRunning
	desired := "running"
	if o.Stopped {
		state, desired = serve.StateStopped, "stopped"
	}
	e := b.graphs[name]
	res := serve.ApplyResult{Diags: diags}
	switch {
	case e == nil:
		res.Created = true
		e = &entry{}
		b.graphs[name] = e
	case bytes.Equal(e.yaml, yaml) && maps.Equal(e.env, o.Env) && e.st.State == state:
		res.Unchanged = true
		return res, nil
	default:
		res.Reloaded = true
		e.st.Generation++
	}
	e.yaml, e.env = slices.Clone(yaml), maps.Clone(o.Env)
	e.st = serve.GraphStatus{Name: name, State: state, Desired: desired, Since: time.Now(), File: name + ".yaml", Origin: origin, Generation: e.st.Generation}
	return res, nil
}

func (b *Backend) mutate(op, name string, f func(*entry)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, Call{Op: op, Name: name})
	e := b.graphs[name]
	if e == nil {
		return fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	f(e)
	return nil
}

func (b *Backend) Delete(name, actor string) error {
	return b.mutate("delete", name, func(*entry) { delete(b.graphs, name) })
}

func (b *Backend) Start(name, actor string) error {
	return b.mutate("start", name, func(e *entry) { e.st.State, e.st.Desired = serve.StateRunning, "running" })
}

func (b *Backend) Stop(name, actor string) error {
	return b.mutate("stop", name, func(e *entry) { e.st.State, e.st.Desired = serve.StateStopped, "stopped" })
}

func (b *Backend) Restart(name, actor string) error {
	return b.mutate("restart", name, func(e *entry) { e.st.State = serve.StateRunning })
}

func (b *Backend) Report(name string) (*engine.Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.graphs[name]
	if e == nil {
		return nil, fmt.Errorf("graph %q: %w", name, serve.ErrNotFound)
	}
	return e.rep, nil
}

func (b *Backend) Validate(name string, yaml []byte) (engine.Diags, error) {
	return b.validate(name, yaml, nil)
}

func (b *Backend) Tap(name, node, port string) (serve.TapStream, error) {
	return nil, fmt.Errorf("graph %q node %q: %w", name, node, serve.ErrNoNode)
}

func (b *Backend) Collector() prometheus.Collector { return noMetrics{} }

// noMetrics is an unchecked collector with nothing to collect.
type noMetrics struct{}

func (noMetrics) Describe(chan<- *prometheus.Desc) {}
func (noMetrics) Collect(chan<- prometheus.Metric) {}

// Queues lists no queue files: the in-memory backend runs nothing.
func (b *Backend) Queues() []serve.QueueRef { return nil }
