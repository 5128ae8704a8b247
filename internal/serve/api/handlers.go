package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// The Supervisor's name rule, checked here too so that nothing reaches the
// backend (or a path) with a bad name.
var graphName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

const badNameMsg = "invalid graph name: 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit, not ending in .yaml or .yml"

// ValidName reports whether name is a graph name the API accepts.
func ValidName(name string) bool {
	l := strings.ToLower(name)
	return graphName.MatchString(name) && !strings.HasSuffix(l, ".yaml") && !strings.HasSuffix(l, ".yml")
}

// name returns the {name} of the route, answering 400 (audited) when it is
// not a valid graph name.
func (s *Server) name(w http.ResponseWriter, r *http.Request) (string, bool) {
	n := r.PathValue("name")
	if ValidName(n) {
		return n, true
	}
	s.refuse(w, r, "request.refused", http.StatusBadRequest, "bad_name", badNameMsg, "bad graph name",
		map[string]any{"name": strconv.QuoteToASCII(clip(n, 80))})
	return "", false
}

// ReadBody reads the size-limited body. On error it has answered (413
// too_large or 400 bad_request, audited) and the handler just returns.
func (s *Server) ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := r.Body
	if body == nil {
		return nil, nil
	}
	// The chain wraps the body already; a compat handler under test may
	// call ReadBody without it, so wrap again (idempotent bound).
	data, err := io.ReadAll(http.MaxBytesReader(w, body, s.maxBody))
	if err == nil {
		return data, nil
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		s.refuse(w, r, "request.refused", http.StatusRequestEntityTooLarge, "too_large",
			"request body too large (limit "+itoa(s.maxBody)+" bytes)", "body too large", nil)
	} else {
		s.refuse(w, r, "request.refused", http.StatusBadRequest, "bad_request", "could not read the request body", "body read failed", nil)
	}
	return nil, err
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	// Upstream's envelope and field names, so its console's status probe
	// works; the audit path is shown only to an authenticated caller
	// (D-API-14), and there is no repo root to disclose.
	auditPath := ""
	ret := map[string]any{"max_bytes": 0, "max_files": 0}
	if s.cfg.Audit != nil {
		mb, mf := s.cfg.Audit.Limits()
		ret = map[string]any{"max_bytes": mb, "max_files": mf}
		if Actor(r) != "anonymous" {
			auditPath = s.cfg.Audit.Path()
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"schema_version": 1,
		"status":         "ok",
		"request_id":     RequestID(r),
		"ts":             time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"),
		"data": map[string]any{
			"service":                         "stream_control_api",
			"repo_root":                       "",
			"security_mode":                   "local+bearer",
			"token_required":                  true,
			"mutation_auth_mode":              "global_bearer",
			"local_mutation_override_enabled": false,
			"audit_path":                      auditPath,
			"audit_retention":                 ret,
			"actor":                           Actor(r),
		},
		"error": nil,
	})
}

func (s *Server) listGraphs(w http.ResponseWriter, r *http.Request) {
	gs := s.b.List()
	if gs == nil {
		gs = []serve.GraphStatus{}
	}
	for i := range gs {
		scrub(&gs[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"graphs": gs})
}

// graphJSON is GraphDetail plus its report in the --report-json shape.
type graphJSON struct {
	*serve.GraphDetail
	Report json.RawMessage `json:"report"`
}

func (s *Server) getGraph(w http.ResponseWriter, r *http.Request) {
	name, ok := s.name(w, r)
	if !ok {
		return
	}
	d, err := s.b.Get(name)
	if err != nil {
		s.backendError(w, r, err)
		return
	}
	dc := *d
	scrub(&dc.GraphStatus)
	if len(d.Env) > 0 {
		// Per-graph variables are shown by name; values that look like
		// secrets, or URLs with credentials (rtsp://user:pw@cam), are
		// masked: a response must not hand out what ${oc.env:...} reads.
		dc.Env = make(map[string]string, len(d.Env))
		for k, v := range d.Env {
			if redact.SecretName(k) {
				v = redact.Mask
			}
			dc.Env[k] = redact.Text(v)
		}
	}
	out := graphJSON{GraphDetail: &dc, Report: json.RawMessage("null")}
	if d.Report != nil {
		out.Report = d.Report.JSON()
	}
	if out.Nodes == nil {
		out.Nodes = []serve.NodeStatus{}
	}
	if out.Edges == nil {
		out.Edges = []serve.Edge{}
	}
	writeJSON(w, http.StatusOK, out)
}

func truthy(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && b || v == "yes" || v == "on"
}

func (s *Server) putGraph(w http.ResponseWriter, r *http.Request) {
	name, ok := s.name(w, r)
	if !ok {
		return
	}
	body, err := s.ReadBody(w, r)
	if err != nil {
		return
	}
	stopped := truthy(r.URL.Query().Get("stopped"))
	res, err := s.b.Apply(name, body, serve.ApplyOptions{Origin: "api", Actor: Actor(r), Stopped: stopped})
	meta := map[string]any{"bytes": len(body), "stopped": stopped}
	if err != nil {
		reason := s.backendError(w, r, err)
		s.Audit(r, "graph.apply", name, "error", reason, meta)
		return
	}
	meta["created"], meta["reloaded"], meta["unchanged"] = res.Created, res.Reloaded, res.Unchanged
	s.Audit(r, "graph.apply", name, "ok", "ok", meta)
	st := s.status(name)
	code := http.StatusOK
	if res.Created {
		code = http.StatusCreated
	}
	writeJSON(w, code, map[string]any{"result": res, "graph": st})
}

// scrub masks secrets in the error texts of a status (node errors quote
// URLs); the Supervisor may have done it already, Text is idempotent.
func scrub(st *serve.GraphStatus) {
	st.LastError = redact.Text(st.LastError)
	st.ReloadError = redact.Text(st.ReloadError)
}

// status is a graph's status after a change; when it vanished in between
// (a concurrent delete) the name alone is returned.
func (s *Server) status(name string) serve.GraphStatus {
	if d, err := s.b.Get(name); err == nil && d != nil {
		st := d.GraphStatus
		scrub(&st)
		return st
	}
	return serve.GraphStatus{Name: name}
}

func (s *Server) deleteGraph(w http.ResponseWriter, r *http.Request) {
	name, ok := s.name(w, r)
	if !ok {
		return
	}
	if err := s.b.Delete(name, Actor(r)); err != nil {
		reason := s.backendError(w, r, err)
		s.Audit(r, "graph.delete", name, "error", reason, nil)
		return
	}
	s.Audit(r, "graph.delete", name, "ok", "ok", nil)
	writeJSON(w, http.StatusOK, map[string]any{"deleted": name})
}

// control is POST /api/v1/graphs/{name}/start|stop|restart. No body is
// needed; one that is sent must be JSON (it carries no options yet).
func (s *Server) control(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.name(w, r)
		if !ok {
			return
		}
		body, err := s.ReadBody(w, r)
		if err != nil {
			return
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			var v any
			ct := strings.ToLower(r.Header.Get("Content-Type"))
			if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(body, &v) != nil {
				s.refuse(w, r, "request.refused", http.StatusBadRequest, "bad_request",
					"a "+verb+" request needs no body; one that is sent must be JSON", "body not json", nil)
				return
			}
		}
		var f func(string, string) error
		switch verb {
		case "start":
			f = s.b.Start
		case "stop":
			f = s.b.Stop
		default:
			f = s.b.Restart
		}
		if err := f(name, Actor(r)); err != nil {
			reason := s.backendError(w, r, err)
			s.Audit(r, "graph."+verb, name, "error", reason, nil)
			return
		}
		s.Audit(r, "graph."+verb, name, "ok", "ok", nil)
		writeJSON(w, http.StatusOK, map[string]any{"graph": s.status(name)})
	}
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	name, ok := s.name(w, r)
	if !ok {
		return
	}
	rep, err := s.b.Report(name)
	if err != nil {
		s.backendError(w, r, err)
		return
	}
	if rep == nil {
		WriteError(w, r, http.StatusNotFound, "not_found", "no report yet: the graph has not run", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(rep.JSON(), '\n'))
}

// validateJSON is `schnitzel validate --json`'s shape for one graph.
type validateJSON struct {
	Graph    string       `json:"graph"`
	Valid    bool         `json:"valid"`
	Errors   []graph.Diag `json:"errors"`
	Warnings []graph.Diag `json:"warnings"`
}

// validate is POST /api/v1/validate[?name=N]: an invalid graph is a 200
// with valid:false, like the CLI's output (it is the answer, not a
// failure of the request).
func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name != "" && !ValidName(name) {
		s.refuse(w, r, "request.refused", http.StatusBadRequest, "bad_name", badNameMsg, "bad graph name",
			map[string]any{"name": strconv.QuoteToASCII(clip(name, 80))})
		return
	}
	body, err := s.ReadBody(w, r)
	if err != nil {
		return
	}
	diags, err := s.b.Validate(name, body)
	var inv *engine.InvalidError
	if err != nil && !errors.As(err, &inv) {
		reason := s.backendError(w, r, err)
		s.Audit(r, "graph.validate", name, "error", reason, nil)
		return
	}
	if inv != nil && len(inv.Diags) > len(diags) {
		diags = inv.Diags
	}
	// A validation changes nothing, so it is not audited (the console
	// validates as the user types: the log would fill with them); a
	// refused request still is, by the middleware.
	d := splitDiags(diags)
	writeJSON(w, http.StatusOK, validateJSON{Graph: name, Valid: err == nil, Errors: d.Errors, Warnings: d.Warnings})
}

func (s *Server) plugins(w http.ResponseWriter, r *http.Request) {
	var v any = []any{}
	if s.cfg.Plugins != nil {
		if p := s.cfg.Plugins(); p != nil {
			v = p
		}
	}
	writeJSON(w, http.StatusOK, v)
}

const maxAuditLimit = 1000

func (s *Server) auditTail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			WriteError(w, r, http.StatusBadRequest, "bad_request", "limit must be an integer from 1 to 1000", nil)
			return
		}
		limit = n
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			// An unparseable since is an error, not "no filter" (D-AUD-2).
			WriteError(w, r, http.StatusBadRequest, "bad_request", "since must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z", nil)
			return
		}
		since = t
	}
	evs := []audit.Event{}
	if s.cfg.Audit != nil {
		got, err := s.cfg.Audit.Tail(since, limit)
		if err != nil {
			s.backendError(w, r, err)
			return
		}
		if got != nil {
			evs = got
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs})
}

func newMetricsRegistry(b Backend) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c := b.Collector(); c != nil {
		reg.MustRegister(c)
	}
	return reg
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}
