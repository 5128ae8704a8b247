package compat

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/internal/serve/fleet"
)

// Config configures the compat routes.
type Config struct {
	// GraphsDir and StateDir confine every path a request names: relative
	// paths resolve against GraphsDir, and after Clean and EvalSymlinks a
	// path must lie in one of the two (else 403, audited).
	GraphsDir, StateDir string
	// Engine validates and runs inline specs and preset graphs: Registry
	// (required), Limits (the hostile-input limits), Getenv (the plugin
	// policy variables), Prefixes. Its LookupEnv is ignored: an inline spec
	// never reads the environment (D-WIZ-1, D-API-13).
	Engine engine.Options
	// LookupEnv answers a preset graph's ${oc.env:...} after the preset's
	// own variables (give it the Supervisor's filtered lookup); nil: SS_*
	// names from the process environment only.
	LookupEnv func(string) (string, bool)
	// Presets holds upstream's preset graph files by name
	// (dev_inproc_demo_v2.yaml, ...): servecmd passes configs/graphs. A
	// preset whose file is missing is listed with available false.
	Presets fs.FS
	Audit   *audit.Log
	// RunTimeout bounds graph/run and a preset run with max_events; 0:
	// 120 s (upstream's graph/run timeout; its preset runs had none).
	RunTimeout time.Duration
	// MaxRuns bounds such runs at once; 0: 2. MaxRunEvents bounds
	// max_events; 0: 100000.
	MaxRuns      int
	MaxRunEvents int64
}

// mode is upstream's access mode of a route: what the policy snapshot
// reports; every POST also gets the middleware's mutation checks
// (content type, Origin), state-changing or not (D-API-1).
type mode string

const (
	modeRead   mode = "read"
	modeMutate mode = "mutate" // changes state: audited
)

type routeDef struct {
	method, pattern string
	mode            mode
	handler         http.HandlerFunc
}

type handlers struct {
	srv   *api.Server
	b     api.Backend
	m     *fleet.Manager
	cfg   Config
	paths confine
	run   *runner
	table []routeDef
}

const (
	defaultRunTimeout = 120 * time.Second
	defaultRunEvents  = 30 // upstream's DEFAULT_MAX_EVENTS
	upstreamLogDir    = "schnitzel_stream_fleet_run"
	upstreamTemplate  = "configs/graphs/dev_stream_template_v2.yaml"
	upstreamFleet     = "configs/fleet.yaml"
)

// Routes returns upstream's control API routes (all but /api/v1/health,
// which the api package serves), to register with srv.Handle. The fleet
// routes also take our own CLI's bodies (see fleetStart).
func Routes(srv *api.Server, b api.Backend, m *fleet.Manager, cfg Config) []api.Route {
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = defaultRunTimeout
	}
	if cfg.MaxRuns <= 0 {
		cfg.MaxRuns = 2
	}
	if cfg.MaxRunEvents <= 0 {
		cfg.MaxRunEvents = 100000
	}
	h := &handlers{srv: srv, b: b, m: m, cfg: cfg, paths: confine{graphs: cfg.GraphsDir, state: cfg.StateDir},
		run: &runner{opts: cfg.Engine, timeout: cfg.RunTimeout, slots: make(chan struct{}, cfg.MaxRuns)}}
	h.table = []routeDef{
		{"POST", "/api/v1/graph/validate", modeRead, h.graphValidate},
		{"POST", "/api/v1/graph/run", modeMutate, h.graphRun},
		{"GET", "/api/v1/graph/profiles", modeRead, h.graphProfiles},
		{"POST", "/api/v1/graph/from-profile", modeRead, h.graphFromProfile},
		{"GET", "/api/v1/presets", modeRead, h.presets},
		{"POST", "/api/v1/presets/{preset_id}/validate", modeRead, h.preset(true)},
		{"POST", "/api/v1/presets/{preset_id}/run", modeMutate, h.preset(false)},
		{"POST", "/api/v1/fleet/start", modeMutate, h.fleetStart},
		{"POST", "/api/v1/fleet/stop", modeMutate, h.fleetStop},
		{"GET", "/api/v1/fleet/status", modeRead, h.fleetStatus},
		{"GET", "/api/v1/monitor/snapshot", modeRead, h.monitorSnapshot},
		{"GET", "/api/v1/governance/policy-snapshot", modeRead, h.policySnapshot},
		{"GET", "/api/v1/governance/audit", modeRead, h.auditTail},
	}
	out := make([]api.Route, len(h.table))
	for i, d := range h.table {
		out[i] = api.Route{Method: d.method, Pattern: d.pattern, Mutates: d.method != "GET", Handler: d.handler}
	}
	return out
}

// audit records an outcome of a state-changing route.
func (h *handlers) audit(r *http.Request, action, target, status, reason string, meta map[string]any) {
	h.srv.Audit(r, action, target, status, reason, meta)
}

// body reads the request body (already bounded by the middleware). An
// empty body is an empty JSON object. ok is false when the answer is
// sent.
func (h *handlers) body(w http.ResponseWriter, r *http.Request, action string) ([]byte, bool) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.refused(w, r, action, "request", http.StatusRequestEntityTooLarge, kindTooLarge, "request body too large")
			return nil, false
		}
		h.refused(w, r, action, "request", http.StatusBadRequest, kindRequest, "could not read the request body")
		return nil, false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	return data, true
}

// refused answers a request error; for a state-changing action it is
// audited as refused (upstream audited none of its 422s: D-AUD-1).
func (h *handlers) refused(w http.ResponseWriter, r *http.Request, action, target string, status int, kind, reason string) {
	if action != "" {
		h.audit(r, action, target, "refused", reason, nil)
	}
	refuse(w, r, status, kind, reason)
}

// decode parses a JSON body into v; a type mismatch is a 422 (pydantic's
// status upstream), in the envelope.
func (h *handlers) decode(w http.ResponseWriter, r *http.Request, data []byte, v any, action string) bool {
	if err := json.Unmarshal(data, v); err != nil {
		h.refused(w, r, action, "request", http.StatusUnprocessableEntity, kindRequest, "invalid request body: "+err.Error())
		return false
	}
	return true
}

// pathError answers a path that could not be confined or read.
func (h *handlers) pathError(w http.ResponseWriter, r *http.Request, action, field string, err error) {
	switch {
	case errors.Is(err, errOutside):
		h.refused(w, r, action, field, http.StatusForbidden, kindForbidden, field+": "+err.Error())
	case errors.Is(err, fs.ErrNotExist):
		h.refused(w, r, action, field, http.StatusNotFound, kindNotFound, field+" not found: "+strings.TrimSuffix(err.Error(), ": "+fs.ErrNotExist.Error()))
	default:
		h.refused(w, r, action, field, http.StatusBadRequest, kindRequest, field+": "+err.Error())
	}
}

// noEnv is the lookup for request input: every variable is unset, so a
// default applies or the load fails; nothing from the environment can
// come back in an answer (D-WIZ-1).
func noEnv(string) (string, bool) { return "", false }

// presetLookup: the preset's variables, then the configured lookup.
func (h *handlers) presetLookup(env map[string]string) func(string) (string, bool) {
	next := h.cfg.LookupEnv
	if next == nil {
		next = func(name string) (string, bool) {
			if !strings.HasPrefix(name, "SS_") {
				return "", false
			}
			return os.LookupEnv(name)
		}
	}
	return func(name string) (string, bool) {
		if v, ok := env[name]; ok {
			return v, true
		}
		return next(name)
	}
}

func (h *handlers) engineOpts(lookup func(string) (string, bool)) engine.Options {
	o := h.cfg.Engine
	o.LookupEnv = lookup
	o.Started = nil
	return o
}

// diagList is the JSON of diagnostics, never null.
func diagList(ds engine.Diags) []any {
	out := make([]any, 0, len(ds))
	for _, d := range ds {
		out = append(out, d)
	}
	return out
}

func reportJSON(rep *engine.Report) json.RawMessage {
	if rep == nil {
		return json.RawMessage("null")
	}
	return json.RawMessage(bytes.TrimSpace(rep.JSON()))
}

// ---- graph editor routes ----

type specBody struct {
	Spec      json.RawMessage `json:"spec"`
	MaxEvents *int64          `json:"max_events"`
}

func (h *handlers) graphValidate(w http.ResponseWriter, r *http.Request) {
	data, ok := h.body(w, r, "")
	if !ok {
		return
	}
	var body specBody
	if !h.decode(w, r, data, &body, "") {
		return
	}
	m, err := decodeObject(body.Spec, "spec")
	if err != nil {
		h.refused(w, r, "", "", http.StatusUnprocessableEntity, kindRequest, err.Error())
		return
	}
	if h.cfg.Engine.Registry == nil {
		refuse(w, r, http.StatusInternalServerError, kindInternal, "no plugin registry configured")
		return
	}
	validation := map[string]any{"ok": false, "error": "", "node_count": 0, "edge_count": 0}
	answer := map[string]any{"validation": validation, "errors": []any{}, "warnings": []any{}}
	s, err := parseSpec(m)
	if err != nil {
		validation["error"] = err.Error()
		failed(w, r, answer, kindValidation, err.Error())
		return
	}
	text, err := s.render()
	if err != nil {
		refuse(w, r, http.StatusInternalServerError, kindInternal, err.Error())
		return
	}
	_, diags, err := engine.Load("inline_spec", text, h.engineOpts(noEnv))
	answer["errors"], answer["warnings"] = diagList(diags.Errors()), diagList(diags.Warnings())
	if err != nil {
		msg := diagText(diags)
		if msg == "" {
			msg = err.Error()
		}
		validation["error"] = msg
		failed(w, r, answer, kindValidation, msg)
		return
	}
	validation["ok"], validation["node_count"], validation["edge_count"] = true, len(s.Nodes), len(s.Edges)
	answerOK(w, r, answer)
}

func (h *handlers) graphRun(w http.ResponseWriter, r *http.Request) {
	const action, target = "graph.run", "inline_spec"
	data, ok1 := h.body(w, r, action)
	if !ok1 {
		return
	}
	var body specBody
	if !h.decode(w, r, data, &body, action) {
		return
	}
	maxEvents := int64(defaultRunEvents)
	if body.MaxEvents != nil {
		maxEvents = *body.MaxEvents
	}
	// Upstream silently turned 0 into 30 (D-API-10).
	if maxEvents <= 0 || maxEvents > h.cfg.MaxRunEvents {
		h.refused(w, r, action, target, http.StatusBadRequest, kindRequest, "max_events must be > 0 and <= "+itoa(h.cfg.MaxRunEvents))
		return
	}
	m, err := decodeObject(body.Spec, "spec")
	if err != nil {
		h.refused(w, r, action, target, http.StatusUnprocessableEntity, kindRequest, err.Error())
		return
	}
	if h.cfg.Engine.Registry == nil {
		refuse(w, r, http.StatusInternalServerError, kindInternal, "no plugin registry configured")
		return
	}
	command := "in-process: --graph inline_spec --max-events " + itoa(maxEvents)
	answer := map[string]any{"returncode": 2, "command": command, "temp_spec_path": "", "stdout_tail": "", "stderr_tail": "",
		"report": json.RawMessage("null"), "errors": []any{}, "warnings": []any{}}
	meta := map[string]any{"command": command, "max_events": maxEvents, "temp_spec_path": ""}
	s, err := parseSpec(m)
	if err != nil {
		meta["returncode"] = 2
		h.audit(r, action, target, "error", err.Error(), meta)
		failed(w, r, answer, kindRunFailed, err.Error())
		return
	}
	text, err := s.render()
	if err != nil {
		refuse(w, r, http.StatusInternalServerError, kindInternal, err.Error())
		return
	}
	res, err := h.run.run(r.Context(), "inline_spec", text, noEnv, maxEvents)
	switch {
	case errors.Is(err, errBusy):
		h.refused(w, r, action, target, http.StatusTooManyRequests, kindTooMany, err.Error()+"; retry when one ends")
		return
	case err != nil:
		h.audit(r, action, target, "error", err.Error(), meta)
		refuse(w, r, http.StatusInternalServerError, kindInternal, err.Error())
		return
	}
	answer["returncode"], answer["stdout_tail"], answer["stderr_tail"] = res.ReturnCode, res.Stdout, res.Stderr
	answer["report"] = reportJSON(res.Report)
	answer["errors"], answer["warnings"] = diagList(res.Diags.Errors()), diagList(res.Diags.Warnings())
	meta["returncode"] = res.ReturnCode
	if res.ReturnCode != 0 {
		h.audit(r, action, target, "error", res.Error, meta)
		failed(w, r, answer, kindRunFailed, res.Error)
		return
	}
	h.audit(r, action, target, "ok", "ok", meta)
	answerOK(w, r, answer)
}

// graphProfiles: upstream's wizard profiles are not shipped; the list is
// empty (truthfully), so its console's editor tab loads.
func (h *handlers) graphProfiles(w http.ResponseWriter, r *http.Request) {
	if _, valid := h.boolQuery(w, r, "experimental"); !valid {
		return
	}
	answerOK(w, r, map[string]any{"profiles": []any{}, "count": 0})
}

func (h *handlers) graphFromProfile(w http.ResponseWriter, r *http.Request) {
	refuse(w, r, http.StatusNotFound, kindNotFound,
		"graph wizard profiles are not part of schnitzel: write the graph and check it with /api/v1/graph/validate")
}

// ---- presets ----

func (h *handlers) boolQuery(w http.ResponseWriter, r *http.Request, key string) (bool, bool) {
	raw := r.URL.Query().Get(key)
	switch strings.ToLower(raw) {
	case "", "false", "0", "no", "off", "f", "n":
		return false, true
	case "true", "1", "yes", "on", "t", "y":
		return true, true
	}
	refuse(w, r, http.StatusUnprocessableEntity, kindRequest, key+" must be a boolean, not "+quote(raw))
	return false, false
}

func (h *handlers) presets(w http.ResponseWriter, r *http.Request) {
	exp, ok1 := h.boolQuery(w, r, "experimental")
	if !ok1 {
		return
	}
	rows := []map[string]any{}
	for i := range Presets {
		p := &Presets[i]
		if p.Experimental && !exp {
			continue
		}
		_, avail := presetGraph(h.cfg.Presets, p)
		rows = append(rows, map[string]any{"preset_id": p.ID, "experimental": p.Experimental, "graph": "configs/graphs/" + p.Graph,
			"description": p.Description, "available": avail})
	}
	answerOK(w, r, map[string]any{"presets": rows, "count": len(rows)})
}

func (h *handlers) preset(validateOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		action := "preset.run"
		if validateOnly {
			action = "" // a validation changes nothing: not audited
		}
		id := r.PathValue("preset_id")
		target := clip(id, 100)
		data, ok1 := h.body(w, r, action)
		if !ok1 {
			return
		}
		p := presetByID(id)
		if p == nil {
			h.refused(w, r, action, target, http.StatusNotFound, kindNotFound, "unknown preset: "+quote(clip(id, 100)))
			return
		}
		var q presetRequest
		if !h.decode(w, r, data, &q, action) {
			return
		}
		if p.Experimental && !q.Experimental {
			h.refused(w, r, action, target, http.StatusBadRequest, kindRequest, "preset '"+p.ID+"' requires experimental=true")
			return
		}
		graphText, avail := presetGraph(h.cfg.Presets, p)
		if !avail {
			h.refused(w, r, action, target, http.StatusNotFound, kindNotFound,
				"graph not found for preset '"+p.ID+"': configs/graphs/"+p.Graph+" is not shipped with schnitzel (available: false in /api/v1/presets)")
			return
		}
		if msg := q.check(h.cfg.MaxRunEvents); msg != "" {
			h.refused(w, r, action, target, http.StatusBadRequest, kindRequest, msg)
			return
		}
		env, err := q.env(p, func(raw string) (string, error) {
			res, err := h.paths.Resolve(raw)
			return res.Abs, err
		})
		if err != nil {
			h.pathError(w, r, action, "path", err)
			return
		}
		if h.cfg.Engine.Registry == nil {
			refuse(w, r, http.StatusInternalServerError, kindInternal, "no plugin registry configured")
			return
		}
		graphName := "preset." + p.ID
		lookup := h.presetLookup(env)
		answer := map[string]any{"preset_id": p.ID, "validate_only": validateOnly, "graph": "configs/graphs/" + p.Graph, "returncode": 0}
		switch {
		case validateOnly:
			answer["command"] = "in-process: validate --graph configs/graphs/" + p.Graph
			_, diags, err := engine.Load(p.Graph, graphText, h.engineOpts(lookup))
			answer["errors"], answer["warnings"] = diagList(diags.Errors()), diagList(diags.Warnings())
			if err != nil {
				answer["returncode"] = 2
				failed(w, r, answer, kindValidation, orMsg(diagText(diags), err))
				return
			}
			answerOK(w, r, answer)
		case q.MaxEvents != nil:
			// A bounded one-shot run, as upstream's (which had no timeout:
			// D-API-8), in this process.
			answer["command"] = "in-process: --graph configs/graphs/" + p.Graph + " --max-events " + itoa(*q.MaxEvents)
			res, err := h.run.run(r.Context(), p.Graph, graphText, lookup, *q.MaxEvents)
			if errors.Is(err, errBusy) {
				h.refused(w, r, action, target, http.StatusTooManyRequests, kindTooMany, err.Error()+"; retry when one ends")
				return
			}
			if err != nil {
				h.audit(r, action, target, "error", err.Error(), nil)
				refuse(w, r, http.StatusInternalServerError, kindInternal, err.Error())
				return
			}
			answer["returncode"], answer["stdout_tail"], answer["stderr_tail"] = res.ReturnCode, res.Stdout, res.Stderr
			answer["report"] = reportJSON(res.Report)
			answer["errors"], answer["warnings"] = diagList(res.Diags.Errors()), diagList(res.Diags.Warnings())
			meta := map[string]any{"returncode": res.ReturnCode, "command": answer["command"]}
			if res.ReturnCode != 0 {
				h.audit(r, action, target, "error", res.Error, meta)
				failed(w, r, answer, kindRuntime, res.Error)
				return
			}
			h.audit(r, action, target, "ok", "ok", meta)
			answerOK(w, r, answer)
		default:
			// No max_events: a long-running graph under the supervisor,
			// preset.<id>, which the API can list, stop and restart
			// (upstream's run blocked a worker thread forever: D-API-8).
			answer["command"] = "apply graph " + graphName
			answer["graph_name"] = graphName
			res, err := h.b.Apply(graphName, graphText, serve.ApplyOptions{Env: env, Origin: "preset", Actor: api.Actor(r)})
			meta := map[string]any{"graph": graphName}
			if err != nil {
				var inv *engine.InvalidError
				if errors.As(err, &inv) {
					answer["returncode"] = 2
					answer["errors"], answer["warnings"] = diagList(inv.Diags.Errors()), diagList(inv.Diags.Warnings())
					h.audit(r, action, target, "error", "invalid graph", meta)
					failed(w, r, answer, kindValidation, orMsg(diagText(inv.Diags), err))
					return
				}
				h.audit(r, action, target, "error", err.Error(), meta)
				h.backendError(w, r, err)
				return
			}
			answer["result"] = res
			if g, err := h.b.Get(graphName); err == nil {
				answer["state"] = g.State
			}
			h.audit(r, action, target, "ok", "ok", meta)
			answerOK(w, r, answer)
		}
	}
}

func (h *handlers) backendError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, serve.ErrNotFound):
		refuse(w, r, http.StatusNotFound, kindNotFound, err.Error())
	case errors.Is(err, serve.ErrBadName):
		refuse(w, r, http.StatusBadRequest, kindRequest, err.Error())
	case errors.Is(err, serve.ErrReadOnly):
		refuse(w, r, http.StatusConflict, kindConflict, err.Error())
	case errors.Is(err, serve.ErrTooMany):
		refuse(w, r, http.StatusTooManyRequests, kindTooMany, err.Error())
	default:
		refuse(w, r, http.StatusInternalServerError, kindInternal, "the graph could not be applied (see the server log)")
	}
}

func orMsg(msg string, err error) string {
	if msg != "" {
		return msg
	}
	return err.Error()
}
