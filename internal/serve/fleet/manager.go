package fleet

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
)

// DefaultTemplate is upstream's per-stream graph,
// configs/graphs/dev_stream_template_v2.yaml: the source's plugin and
// config come from the SS_* variables, the sink prints each packet.
//
//go:embed dev_stream_template_v2.yaml
var DefaultTemplate []byte

// Origin marks the graphs the fleet owns (serve.GraphStatus.Origin).
const Origin = "fleet"

// Prefix starts every fleet graph's name: fleet.<stream id>.
const Prefix = "fleet."

// GraphName is the graph that runs stream id.
func GraphName(id string) string { return Prefix + id }

// Options configure a Manager.
type Options struct {
	// Engine, when it has a Registry, validates every stream's graph
	// (template plus that stream's variables) before the first Apply, so
	// that a bad stream changes nothing. Its LookupEnv is consulted after
	// the stream's variables (give it the Supervisor's filtered lookup).
	Engine engine.Options
}

// Manager starts, stops and lists fleet streams over an api.Backend. One
// call at a time: starts and stops are serialised (upstream could start
// the same stream twice, D-FLT-4).
type Manager struct {
	b    api.Backend
	opts Options
	mu   sync.Mutex
}

// New returns a Manager over b.
func New(b api.Backend, opts Options) *Manager { return &Manager{b: b, opts: opts} }

// Result is what happened to one stream.
type Result struct {
	ID     string `json:"id"`
	Graph  string `json:"graph"`
	Action string `json:"action"` // started, reloaded, unchanged, stopped, failed
	Type   string `json:"input_type,omitempty"`
	// State is the graph's state after a start ("" after a stop).
	State serve.State `json:"state,omitempty"`
	Error string      `json:"error,omitempty"`
}

// StreamStatus is one fleet graph as status lists it.
type StreamStatus struct {
	ID        string      `json:"id"`
	Graph     string      `json:"graph"`
	State     serve.State `json:"state"`
	Status    string      `json:"status"`
	Restarts  int         `json:"restarts"`
	LastError string      `json:"last_error"`
	InPerSec  float64     `json:"in_per_sec"`
	OutPerSec float64     `json:"out_per_sec"`
}

// StreamError is a stream whose graph does not validate: its diagnostics
// point into the template, the stream names where its variables come from.
type StreamError struct {
	Stream string
	Line   int // the stream's entry in the fleet file
	File   string
	Err    error // often an *engine.InvalidError
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("%s:%d: stream %q: %v", e.File, e.Line, e.Stream, e.Err)
}

func (e *StreamError) Unwrap() error { return e.Err }

// ErrUnknownStream: a requested id is not an enabled stream of the file.
var ErrUnknownStream = errors.New("not an enabled stream of the fleet file")

// ErrNotFleet: a graph named fleet.<id> exists but was not made by the
// fleet (another origin); the fleet neither overwrites nor deletes it.
var ErrNotFleet = errors.New("graph exists and is not a fleet graph")

// Select returns the enabled streams named by ids (all enabled ones when
// ids is empty), in file order. An id that is invalid or not an enabled
// stream is an error naming it (upstream dropped it silently).
func Select(f *File, ids []string) ([]Stream, error) {
	enabled := f.Enabled()
	if len(ids) == 0 {
		if len(enabled) == 0 {
			return nil, fmt.Errorf("%s: no enabled streams", f.Name)
		}
		return enabled, nil
	}
	want := map[string]bool{}
	var bad []string
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if !ValidID(id) {
			bad = append(bad, fmt.Sprintf("%q (invalid id)", id))
			continue
		}
		s := f.Stream(id)
		switch {
		case s == nil:
			bad = append(bad, fmt.Sprintf("%q (not in the file)", id))
		case !s.Enabled:
			bad = append(bad, fmt.Sprintf("%q (disabled)", id))
		}
		want[id] = true
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s: streams %s: %w", f.Name, strings.Join(bad, ", "), ErrUnknownStream)
	}
	var out []Stream
	for _, s := range enabled {
		if want[s.ID] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no enabled streams selected", f.Name)
	}
	return out, nil
}

// Plan is a validated start: every selected stream with its variables.
type Plan struct {
	File     *File
	Template []byte
	Streams  []Stream
	Env      map[string]map[string]string // by stream id
}

// Input is what a start is made of: the two files' names (for messages)
// and text, the stream ids (none: every enabled stream) and the
// directory relative input paths are joined to ("" leaves them relative:
// the serve process's working directory; upstream used its repo root).
type Input struct {
	FleetName, TemplateName string
	Fleet, Template         []byte
	Streams                 []string
	BaseDir                 string
}

// Prepare parses the fleet file and the template, selects the streams
// and validates each stream's graph. Nothing is changed; every error is
// returned (a *fleet.Error for the file, *StreamError for a stream).
func (m *Manager) Prepare(in Input) (*Plan, error) {
	fleetName, templateName, templateYAML, ids := in.FleetName, in.TemplateName, in.Template, in.Streams
	if fleetName == "" {
		fleetName = "fleet.yaml"
	}
	if templateName == "" {
		templateName = "template.yaml"
	}
	f, err := Parse(fleetName, in.Fleet)
	if err != nil {
		return nil, err
	}
	if len(templateYAML) == 0 {
		return nil, fmt.Errorf("%s: the graph template is empty", templateName)
	}
	streams, err := Select(f, ids)
	if err != nil {
		return nil, err
	}
	p := &Plan{File: f, Template: templateYAML, Streams: streams, Env: map[string]map[string]string{}}
	var errs []error
	for _, s := range streams {
		env := s.Env(in.BaseDir)
		p.Env[s.ID] = env
		if m.opts.Engine.Registry == nil {
			continue
		}
		opts := m.opts.Engine
		next := opts.LookupEnv
		opts.LookupEnv = func(name string) (string, bool) {
			if v, ok := env[name]; ok {
				return v, true
			}
			if next != nil {
				return next(name)
			}
			return "", false
		}
		if _, _, err := engine.Load(templateName, templateYAML, opts); err != nil {
			errs = append(errs, &StreamError{Stream: s.ID, Line: s.Line, File: fleetName, Err: err})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Start is Prepare then Apply: a fleet file or stream that does not
// validate changes nothing.
func (m *Manager) Start(fleetYAML, templateYAML []byte, ids []string, actor string) ([]Result, error) {
	p, err := m.Prepare(Input{Fleet: fleetYAML, Template: templateYAML, Streams: ids})
	if err != nil {
		return nil, err
	}
	return m.Apply(p, actor), nil
}

// Apply applies one graph per planned stream, fleet.<id>, with the
// stream's variables and origin fleet. A stream whose graph exists with
// another origin is not touched (its Result says so); a stream that is
// already running the same template and variables is left as it is.
func (m *Manager) Apply(p *Plan, actor string) []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	origins := m.origins()
	out := make([]Result, 0, len(p.Streams))
	for _, s := range p.Streams {
		name := GraphName(s.ID)
		r := Result{ID: s.ID, Graph: name, Type: s.Type}
		if o, ok := origins[name]; ok && o != Origin {
			r.Action, r.Error = "failed", fmt.Sprintf("graph %s has origin %q: %v", name, o, ErrNotFleet)
			out = append(out, r)
			continue
		}
		res, err := m.b.Apply(name, p.Template, serve.ApplyOptions{Env: p.Env[s.ID], Origin: Origin, Actor: actor})
		switch {
		case err != nil:
			r.Action, r.Error = "failed", err.Error()
		case res.Unchanged:
			r.Action = "unchanged"
		case res.Created:
			r.Action = "started"
		default:
			r.Action = "reloaded"
		}
		out = append(out, r)
	}
	states := map[string]serve.State{}
	for _, g := range m.b.List() {
		states[g.Name] = g.State
	}
	for i := range out {
		if out[i].Error == "" {
			out[i].State = states[out[i].Graph]
		}
	}
	return out
}

// origins maps every graph's name to its origin ("" counts as api).
func (m *Manager) origins() map[string]string {
	o := map[string]string{}
	for _, g := range m.b.List() {
		origin := g.Origin
		if origin == "" {
			origin = "api"
		}
		o[g.Name] = origin
	}
	return o
}

// Stop deletes the fleet graphs of ids (every fleet graph when ids is
// empty). It only ever deletes graphs whose origin is fleet, and never
// signals a process: the streams are goroutines of this one (D-API-5).
func (m *Manager) Stop(ids []string, actor string) ([]Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	origins := m.origins()
	var names []string
	if len(ids) == 0 {
		for name, o := range origins {
			if o == Origin && strings.HasPrefix(name, Prefix) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
	} else {
		var bad []string
		for _, id := range ids {
			if !ValidID(id) {
				bad = append(bad, fmt.Sprintf("%q", id))
				continue
			}
			names = append(names, GraphName(id))
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("invalid stream ids %s", strings.Join(bad, ", "))
		}
	}
	out := make([]Result, 0, len(names))
	for _, name := range names {
		r := Result{ID: strings.TrimPrefix(name, Prefix), Graph: name, Action: "stopped"}
		o, ok := origins[name]
		switch {
		case !ok:
			r.Action, r.Error = "failed", fmt.Sprintf("graph %s: %v", name, serve.ErrNotFound)
		case o != Origin:
			r.Action, r.Error = "failed", fmt.Sprintf("graph %s has origin %q: %v", name, o, ErrNotFleet)
		default:
			if err := m.b.Delete(name, actor); err != nil {
				r.Action, r.Error = "failed", err.Error()
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Status lists the fleet graphs, by stream id.
func (m *Manager) Status() []StreamStatus {
	var out []StreamStatus
	for _, g := range m.b.List() {
		if g.Origin != Origin || !strings.HasPrefix(g.Name, Prefix) {
			continue
		}
		out = append(out, StreamStatus{ID: strings.TrimPrefix(g.Name, Prefix), Graph: g.Name, State: g.State, Status: g.Status,
			Restarts: g.Restarts, LastError: g.LastError, InPerSec: g.InPerSec, OutPerSec: g.OutPerSec})
	}
	slices.SortFunc(out, func(a, b StreamStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}
