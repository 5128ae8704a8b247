package serve

import (
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/report"
	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// sample is one reading of a run's counters.
type sample struct {
	at   time.Time
	snap runtime.Snapshot
	r    *run
}

// rates are per second between the last two samples of one run.
type rates struct {
	in, out            float64
	consumed, produced map[string]float64
}

// sample reads every running graph's counters (one goroutine, every
// sampleEvery) so that List and Get answer with rates without waiting.
func (s *Supervisor) sample() {
	type item struct {
		g *graphRec
		r *run
		x *engine.Executor
	}
	var items []item
	s.mu.Lock()
	for _, g := range s.graphs {
		if r := g.cur; r != nil && r.x != nil {
			items = append(items, item{g, r, r.x})
		}
	}
	s.mu.Unlock()
	for _, it := range items {
		snap := it.x.Snapshot()
		cur := sample{at: time.Now(), snap: snap, r: it.r}
		s.mu.Lock()
		if it.g.cur == it.r {
			prev := it.g.samples[0]
			it.g.samples = [2]sample{cur, prev}
			if prev.r == it.r {
				it.g.rates = rateBetween(prev, cur)
			}
		}
		s.mu.Unlock()
	}
}

func rateBetween(a, b sample) rates {
	dt := b.at.Sub(a.at).Seconds()
	r := rates{consumed: map[string]float64{}, produced: map[string]float64{}}
	if dt <= 0 {
		return r
	}
	before := map[string]runtime.NodeStats{}
	for _, n := range a.snap.Nodes {
		before[n.ID] = n
	}
	for _, n := range b.snap.Nodes {
		p := before[n.ID]
		c := float64(n.Consumed-p.Consumed) / dt
		o := float64(n.Produced-p.Produced) / dt
		r.consumed[n.ID], r.produced[n.ID] = c, o
		if n.IsSink {
			r.in += c
		}
	}
	r.out = float64(b.snap.SourceEmitted-a.snap.SourceEmitted) / dt
	return r
}

// List is every graph's status, by name.
func (s *Supervisor) List() []GraphStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []GraphStatus{}
	for _, name := range sortedKeys(s.graphs) {
		g := s.graphs[name]
		if g.pending || g.gone {
			continue
		}
		out = append(out, s.statusLocked(g))
	}
	return out
}

func (s *Supervisor) statusLocked(g *graphRec) GraphStatus {
	st := GraphStatus{Name: g.name, State: g.state, Desired: g.desired, Status: g.status, Since: g.since, Restarts: g.restarts,
		LastError: g.lastError, ReloadError: g.reloadError, File: g.path, Origin: g.origin, Generation: g.gen}
	if g.state == StateBackoff && !g.backoffUntil.IsZero() {
		t := g.backoffUntil
		st.BackoffUntil = &t
	}
	var snap *runtime.Snapshot
	if g.cur != nil {
		st.InPerSec, st.OutPerSec = g.rates.in, g.rates.out
		if g.samples[0].r == g.cur {
			snap = &g.samples[0].snap
		}
		st.Status = report.StatusOK
	} else if g.last != nil {
		snap = &g.last.final
	}
	if snap != nil {
		for _, n := range snap.Nodes {
			st.Dropped += n.InboxDropped
			st.Errors += n.Errors
		}
		if g.cur != nil && (st.Dropped > 0 || st.Errors > 0) {
			st.Status = report.StatusDegraded
		}
	}
	return st
}

// Get is one graph in detail: status, the file as written, nodes with
// counters and rates, edges, and the live (or last) report.
func (s *Supervisor) Get(name string) (*GraphDetail, error) {
	g, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	d := &GraphDetail{GraphStatus: s.statusLocked(g), YAML: string(g.yaml), Env: maskEnv(g.env)}
	plan := g.plan
	var x *engine.Executor
	var started time.Time
	var snap runtime.Snapshot
	haveSnap := false
	rt := g.rates
	rep := g.rep
	if r := g.cur; r != nil {
		plan = r.plan
		x, started = r.x, r.startedAt
	} else if r := g.last; r != nil {
		if plan == nil {
			plan = r.plan
		}
		snap, haveSnap = r.final, true
	}
	if x == nil && g.cur != nil {
		rep = nil // starting: no counters yet
		haveSnap = false
	}
	inboxMax := s.cfg.Engine.InboxMax
	s.mu.Unlock()

	if x != nil {
		snap, haveSnap = x.Snapshot(), true
		rep = report.FromSnapshot(g.path, snap, started)
	}
	d.Report = rep
	d.Nodes, d.Edges = []NodeStatus{}, []Edge{}
	if plan == nil {
		return d, nil
	}
	byID := map[string]runtime.NodeStats{}
	if haveSnap {
		for _, n := range snap.Nodes {
			byID[n.ID] = n
		}
	}
	if inboxMax <= 0 {
		inboxMax = 1024 // the runtime's default
	}
	for _, pn := range plan.Nodes {
		ns := NodeStatus{ID: pn.ID, Plugin: pn.Plugin, Kind: pn.Kind}
		if pn.Kind != graph.KindSource {
			ns.InboxMax = inboxMax
			if pn.Runtime.InboxMax > 0 {
				ns.InboxMax = pn.Runtime.InboxMax
			}
		}
		if n, ok := byID[pn.ID]; ok {
			ns.Consumed, ns.Produced, ns.InboxDepth = n.Consumed, n.Produced, n.InboxDepth
			ns.Dropped, ns.Errors, ns.Failed = n.InboxDropped, n.Errors, n.Failed
		}
		if x != nil {
			ns.ConsumedRate, ns.ProducedRate = rt.consumed[pn.ID], rt.produced[pn.ID]
		}
		if rep != nil {
			for _, e := range rep.Errors {
				if e.Node == pn.ID {
					ns.LastError = redact.Text(e.Message)
				}
			}
		}
		d.Nodes = append(d.Nodes, ns)
	}
	for _, e := range plan.Graph.Edges {
		d.Edges = append(d.Edges, Edge{From: e.From, FromPort: e.FromPort, To: e.To, ToPort: e.ToPort})
	}
	return d, nil
}

// maskEnv hides the values of variables whose names say they are secret
// (PASSWORD, TOKEN, ...): Get's answer is logged and shown in consoles.
func maskEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		if redact.SecretName(k) {
			v = "***"
		}
		out[k] = v
	}
	return out
}

// Report is the live report while the graph runs, else the last run's;
// nil before any run.
func (s *Supervisor) Report(name string) (*engine.Report, error) {
	g, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	rep := g.rep
	var x *engine.Executor
	var started time.Time
	if r := g.cur; r != nil && r.x != nil {
		x, started = r.x, r.startedAt
	}
	s.mu.Unlock()
	if x != nil {
		return report.FromSnapshot(g.path, x.Snapshot(), started), nil
	}
	return rep, nil
}
