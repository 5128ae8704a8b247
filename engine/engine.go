// Package engine runs a v2 graph from Go code: load, validate, build the
// nodes, run, report. The CLI's run path is this sequence plus flags,
// signals, metrics and printing; embedders and tests call Run.
//
// The types here are aliases of the module's internal ones, so a caller
// outside the module can hold and read them (fields, methods) but the
// internal packages stay free to move.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/report"
	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

type (
	// Graph is a loaded graph file, before validation.
	Graph = graph.Graph
	// Plan is a validated graph: every node resolved against a registry.
	Plan = graph.Plan
	// Diags are the loader's and validator's diagnostics (file:line: ...).
	Diags = graph.Diags
	// Limits bound what the loader reads (zero fields: the defaults).
	Limits = graph.Limits
	// Executor is a graph whose nodes are built: Stop, Snapshot, Liveness.
	Executor = runtime.Executor
	// Report is the run report (what --report-json prints; JSON, Summary).
	Report = report.Report
)

// Options configure a load and a run. Only Registry is required.
type Options struct {
	Registry *plugin.Registry
	// LookupEnv resolves ${oc.env:...} in the graph; nil: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Getenv reads the policy variables (plugin.PolicyFromEnv); nil: os.Getenv.
	Getenv func(string) string
	Limits Limits
	// Prefixes are module prefixes allowed beside plugin.DefaultPrefixes
	// while ALLOWED_PLUGIN_PREFIXES is unset: a custom binary's own nodes
	// (cli.WithAllowedPrefixes). Set, the variable still replaces them all.
	Prefixes []string
	// Strict makes warnings (unknown config keys, ...) errors.
	Strict bool

	MaxEvents   int64         // stop sources after this many packets in total; 0: no limit
	InboxMax    int           // default inbox bound in packets (0: 1024)
	InboxBytes  int64         // default inbox bound in bytes of frames (0: runtime default)
	StopTimeout time.Duration // drain bound after a stop (0: 5 s)
	Logger      *slog.Logger  // nil: discard
	Stdout      io.Writer     // where print sinks write (nil: os.Stdout)
	Stdin       io.Reader     // what stdin sources read (nil: os.Stdin)

	// Started, if set, is called once the nodes are built and before they
	// start: the CLI serves metrics and watches signals from here. An
	// error aborts the run: the built nodes are closed, none is started.
	Started func(*Executor) error
}

// InvalidError is a graph that cannot run: Diags holds every diagnostic.
type InvalidError struct {
	Diags  Diags
	Strict bool // only warnings, and Options.Strict was set
}

func (e *InvalidError) Error() string {
	n := len(e.Diags.Errors())
	switch {
	case n == 0 && e.Strict:
		return fmt.Sprintf("graph has %d warning(s) and strict is set: %v", len(e.Diags), e.Diags)
	case n == 0:
		return "graph is invalid"
	}
	return fmt.Sprintf("graph is invalid: %d error(s): %v", n, e.Diags.Errors())
}

func (o *Options) lookupEnv() func(string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv
	}
	return os.LookupEnv
}

func (o *Options) getenv() func(string) string {
	if o.Getenv != nil {
		return o.Getenv
	}
	return os.Getenv
}

func (o *Options) policy() plugin.Policy {
	p := plugin.PolicyFromEnv(o.getenv())
	if strings.TrimSpace(o.getenv()("ALLOWED_PLUGIN_PREFIXES")) == "" {
		p.Prefixes = append(slices.Clip(p.Prefixes), o.Prefixes...)
	}
	return p
}

// LoadFile loads and validates a graph file. It returns every diagnostic;
// err is an *InvalidError when the graph cannot run.
func LoadFile(path string, opts Options) (*Plan, Diags, error) {
	g, diags := graph.LoadFileLimited(path, opts.lookupEnv(), opts.Limits)
	return Validate(g, diags, opts)
}

// Load is LoadFile for graph text; name is used in diagnostics.
func Load(name string, data []byte, opts Options) (*Plan, Diags, error) {
	g, diags := graph.LoadLimited(name, data, opts.lookupEnv(), opts.Limits)
	return Validate(g, diags, opts)
}

// Validate resolves a loaded graph g against opts.Registry; diags are the
// loader's, returned with the validator's appended, sorted. It validates
// even when loading found problems, so that one pass reports every error.
func Validate(g *Graph, diags Diags, opts Options) (*Plan, Diags, error) {
	if g == nil {
		return nil, diags, &InvalidError{Diags: diags}
	}
	if opts.Registry == nil {
		return nil, diags, errors.New("engine: Options.Registry is nil")
	}
	plan, vdiags := graph.Validate(g, opts.Registry, opts.policy())
	diags = append(diags, vdiags...)
	graph.SortDiags(diags)
	if plan == nil || diags.HasErrors() {
		return nil, diags, &InvalidError{Diags: diags}
	}
	if opts.Strict && len(diags) > 0 {
		return nil, diags, &InvalidError{Diags: diags, Strict: true}
	}
	return plan, diags, nil
}

// Execute builds plan's nodes and runs them until the input is exhausted,
// MaxEvents is reached or ctx is cancelled (a graceful stop, bounded by
// StopTimeout). graphName names the graph in the report. err is a build
// failure (a node's constructor or Options.Started); a node failing while
// running is in the report (Status error, Error), not err. A v1 job graph
// is not run here (the CLI runs jobs).
func Execute(ctx context.Context, plan *Plan, graphName string, opts Options) (*Report, error) {
	if plan.Graph.Version == 1 {
		return nil, fmt.Errorf("%s: a v1 job graph (job: %s) runs through the CLI, not engine.Execute", plan.Graph.File, plan.Graph.Job)
	}
	x, err := runtime.New(plan, runtime.Options{MaxEvents: opts.MaxEvents, InboxMax: opts.InboxMax, InboxBytes: opts.InboxBytes,
		Logger: opts.Logger, Stdout: opts.Stdout, Stdin: opts.Stdin, StopTimeout: opts.StopTimeout})
	if err != nil {
		var ne *runtime.NodeError
		if errors.As(err, &ne) {
			if n := plan.Graph.NodeByID(ne.NodeID); n != nil {
				return nil, fmt.Errorf("%s:%d: node %q: %w", plan.Graph.File, n.Pos.Line, ne.NodeID, ne.Err)
			}
			return nil, fmt.Errorf("node %q: %w", ne.NodeID, ne.Err)
		}
		return nil, err
	}
	if opts.Started != nil {
		if err := opts.Started(x); err != nil {
			if cerr := x.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return nil, err
		}
	}
	return report.FromResult(graphName, x.Run(ctx)), nil
}

// Run loads, validates and runs the graph file. The report is returned
// whenever the graph ran; err is an *InvalidError, a build failure, or the
// first node failure (the report then has Status error).
func Run(ctx context.Context, graphFile string, opts Options) (*Report, error) {
	plan, _, err := LoadFile(graphFile, opts)
	if err != nil {
		return nil, err
	}
	rep, err := Execute(ctx, plan, graphFile, opts)
	if err != nil {
		return nil, err
	}
	if rep.Error != nil {
		return rep, fmt.Errorf("node %q failed (%s): %s", rep.Error.Node, rep.Error.Phase, rep.Error.Message)
	}
	return rep, nil
}
