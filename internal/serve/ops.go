package serve

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
)

// load validates data as the graph file path with the graph's env under
// the serve rules (restricted env, the configured limits). A v1 job file
// is invalid here: serve runs v2 graphs only.
func (s *Supervisor) load(path string, data []byte, env map[string]string) (*engine.Plan, engine.Diags, error) {
	opts := s.cfg.Engine
	opts.LookupEnv = s.lookupFor(env)
	plan, diags, err := engine.Load(path, data, opts)
	if err != nil {
		return nil, diags, err
	}
	if plan.Graph.Version == 1 {
		diags = append(diags, graph.Diag{File: path, Line: plan.Graph.JobPos.Line, Col: plan.Graph.JobPos.Col, Severity: graph.SevError, Subject: "job",
			Msg: fmt.Sprintf("v1 job graphs (job: %s) are not supported under schnitzel serve: run them with `schnitzel run --graph FILE`, or write a version 2 graph", plan.Graph.Job)})
		return nil, diags, &engine.InvalidError{Diags: diags}
	}
	return plan, diags, nil
}

// firstDiags is an invalid version's reason in one line: the first few
// errors.
func firstDiags(err error) string {
	var ie *engine.InvalidError
	if !errors.As(err, &ie) {
		return err.Error()
	}
	errs := ie.Diags.Errors()
	if len(errs) == 0 {
		errs = ie.Diags
	}
	const show = 3
	msg := ""
	for i, d := range errs {
		if i == show {
			msg += fmt.Sprintf("; and %d more", len(errs)-show)
			break
		}
		if i > 0 {
			msg += "; "
		}
		msg += d.String()
	}
	if msg == "" {
		msg = ie.Error()
	}
	return msg
}

// claim returns name's record with its opMu held, creating a pending one
// (invisible until committed) when there is none.
func (s *Supervisor) claim(name string) (g *graphRec, created bool, err error) {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return nil, false, errClosed
		}
		g = s.graphs[name]
		if g == nil {
			g = s.newRecLocked(name, filepath.Join(s.cfg.GraphsDir, name+".yaml"))
			g.opMu.Lock() // a fresh mutex: whoever finds the record waits for the commit
			s.mu.Unlock()
			return g, true, nil
		}
		s.mu.Unlock()
		g.opMu.Lock()
		s.mu.Lock()
		gone := g.gone
		s.mu.Unlock()
		if !gone {
			return g, false, nil
		}
		g.opMu.Unlock()
	}
}

func (s *Supervisor) newRecLocked(name, path string) *graphRec {
	g := &graphRec{name: name, path: path, pending: true, desired: desiredRunning, origin: "api", state: StateStopped, since: time.Now()}
	s.graphs[name] = g
	return g
}

// drop forgets a record that was never committed or is deleted.
func (s *Supervisor) drop(g *graphRec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.gone = true
	if s.graphs[g.name] == g {
		delete(s.graphs, g.name)
	}
}

// Apply validates data (an *engine.InvalidError when it cannot run: then
// nothing changes, and a running version keeps running with ReloadError
// set), writes it atomically to the graphs dir and starts it, or
// hot-reloads it: the old run is stopped and drained, then the new one
// started. The same bytes and env as now change nothing (Unchanged).
func (s *Supervisor) Apply(name string, data []byte, o ApplyOptions) (ApplyResult, error) {
	if err := CheckName(name); err != nil {
		return ApplyResult{}, err
	}
	g, created, err := s.claim(name)
	if err != nil {
		return ApplyResult{}, err
	}
	defer g.opMu.Unlock()
	plan, diags, err := s.load(g.path, data, o.Env)
	res := ApplyResult{Created: created, Diags: diags.Warnings()}
	if err != nil {
		if created {
			s.drop(g)
		} else {
			s.mu.Lock()
			g.reloadError = firstDiags(err)
			s.mu.Unlock()
		}
		return res, err
	}
	desired := desiredRunning
	if o.Stopped {
		desired = desiredStopped
	}
	origin := o.Origin
	if origin == "" {
		origin = "api"
	}
	sum := sha256.Sum256(data)

	s.mu.Lock()
	unchanged := !created && g.plan != nil && sum == g.sum && envEqual(g.env, o.Env)
	s.mu.Unlock()
	if unchanged {
		res.Unchanged = true
		return res, s.setDesiredLocked(g, desired)
	}

	if err := writeAtomic(g.path, data, 0o600); err != nil {
		if created {
			s.drop(g)
		}
		return res, fmt.Errorf("graph %q: write %s: %w", name, g.path, err)
	}
	fp, _ := statFP(g.path)
	s.mu.Lock()
	hadRun := g.cur != nil
	g.yaml, g.sum, g.fp = slices.Clone(data), sum, fp
	g.env, g.origin, g.desired = cloneEnv(o.Env), origin, desired
	g.plan, g.invalid = plan, nil
	g.gen++
	g.reloadError, g.lastError = "", ""
	g.restarts, g.attempt = 0, 0
	g.pending = false
	s.cancelBackoffLocked(g)
	if g.cur == nil {
		s.setStateLocked(g, StateStopped)
	}
	s.mu.Unlock()
	if err := s.saveState(); err != nil {
		s.log.Error("graph applied but the state file was not written", "graph", name, "err", err)
	}
	if !created {
		res.Reloaded = true
	}
	if hadRun {
		t0 := time.Now()
		s.stopLocked(g, "graph reloaded")
		if desired == desiredRunning {
			s.startLocked(g)
		}
		res.ReloadTime = time.Since(t0)
	} else if s.shouldRun(g) {
		s.startLocked(g)
	}
	return res, nil
}

// setDesiredLocked records desired and makes it so (start or stop); a
// graph already as desired is left alone. Caller holds g.opMu.
func (s *Supervisor) setDesiredLocked(g *graphRec, desired string) error {
	s.mu.Lock()
	changed := g.desired != desired
	g.desired = desired
	s.mu.Unlock()
	if !changed {
		return nil
	}
	if err := s.saveState(); err != nil {
		return err
	}
	if desired == desiredStopped {
		s.mu.Lock()
		s.cancelBackoffLocked(g)
		s.mu.Unlock()
		s.stopLocked(g, "graph stopped")
		return nil
	}
	s.mu.Lock()
	g.restarts, g.attempt = 0, 0
	s.mu.Unlock()
	if s.shouldRun(g) {
		s.startLocked(g)
	}
	return nil
}

// Delete stops the graph, removes its file and forgets it.
func (s *Supervisor) Delete(name, actor string) error {
	g, err := s.lockGraph(name)
	if err != nil {
		return err
	}
	defer g.opMu.Unlock()
	s.mu.Lock()
	s.cancelBackoffLocked(g)
	s.mu.Unlock()
	s.stopLocked(g, "graph deleted")
	if err := os.Remove(g.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("graph %q: %w", name, err)
	}
	if err := syncDir(s.cfg.GraphsDir); err != nil {
		s.log.Warn("graphs dir sync", "err", err)
	}
	s.drop(g)
	return s.saveState()
}

// Start makes the graph's desired state running and starts it (a graph in
// backoff starts now). An invalid file is an *engine.InvalidError.
func (s *Supervisor) Start(name, actor string) error {
	g, err := s.lockGraph(name)
	if err != nil {
		return err
	}
	defer g.opMu.Unlock()
	s.mu.Lock()
	g.desired = desiredRunning
	g.restarts, g.attempt = 0, 0
	s.cancelBackoffLocked(g)
	invalid := g.invalid
	s.mu.Unlock()
	if err := s.saveState(); err != nil {
		return err
	}
	if invalid != nil {
		return invalid
	}
	if s.shouldRun(g) {
		s.startLocked(g)
	}
	return nil
}

// Stop makes the graph's desired state stopped and stops it (drained).
func (s *Supervisor) Stop(name, actor string) error {
	g, err := s.lockGraph(name)
	if err != nil {
		return err
	}
	defer g.opMu.Unlock()
	s.mu.Lock()
	g.desired = desiredStopped
	s.cancelBackoffLocked(g)
	s.mu.Unlock()
	if err := s.saveState(); err != nil {
		return err
	}
	s.stopLocked(g, "graph stopped")
	return nil
}

// Restart stops the graph (drained) and starts it again, desired running.
func (s *Supervisor) Restart(name, actor string) error {
	g, err := s.lockGraph(name)
	if err != nil {
		return err
	}
	defer g.opMu.Unlock()
	s.mu.Lock()
	g.desired = desiredRunning
	g.restarts, g.attempt = 0, 0
	s.cancelBackoffLocked(g)
	invalid := g.invalid
	s.mu.Unlock()
	if err := s.saveState(); err != nil {
		return err
	}
	s.stopLocked(g, "graph restarted")
	if invalid != nil {
		return invalid
	}
	if s.shouldRun(g) {
		s.startLocked(g)
	}
	return nil
}

// Validate loads data under the serve limits and env rules (an existing
// graph's own variables included); name may be empty.
func (s *Supervisor) Validate(name string, data []byte) (engine.Diags, error) {
	path := filepath.Join(s.cfg.GraphsDir, "graph.yaml")
	var env map[string]string
	if name != "" {
		if err := CheckName(name); err != nil {
			return nil, err
		}
		path = filepath.Join(s.cfg.GraphsDir, name+".yaml")
		s.mu.Lock()
		if g := s.graphs[name]; g != nil && !g.pending && !g.gone {
			path, env = g.path, cloneEnv(g.env)
		}
		s.mu.Unlock()
	}
	_, diags, err := s.load(path, data, env)
	return diags, err
}
