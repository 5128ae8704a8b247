package compat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/internal/serve/fleet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// The fleet routes serve two clients on the same paths: upstream's
// console and scripts, and our CLI (schnitzel fleet). Which one asks is
// told by the body, never guessed from headers:
//   - POST /api/v1/fleet/start with "fleet_yaml" or "template_yaml": ours
//     (the files' text; the server opens no path). Otherwise upstream's
//     {config, graph_template, log_dir, streams, extra_args}.
//   - POST /api/v1/fleet/stop with "streams" as a JSON array: ours.
//     Otherwise upstream's {log_dir}.
//   - GET /api/v1/fleet/status has no body: one answer serves both,
//     upstream's envelope plus our top-level "streams".

// ourStart is our CLI's body.
type ourStart struct {
	FleetYAML    string   `json:"fleet_yaml"`
	TemplateYAML string   `json:"template_yaml"`
	Streams      []string `json:"streams"`
	// BaseDir is the directory relative input paths in the fleet file are
	// joined to (the CLI sends the fleet file's directory); never opened.
	BaseDir string `json:"base_dir"`
}

// upstreamStart is upstream's FleetStartRequest (control_api/models.py).
type upstreamStart struct {
	Config        *string `json:"config"`
	GraphTemplate *string `json:"graph_template"`
	LogDir        *string `json:"log_dir"`
	Streams       string  `json:"streams"`
	ExtraArgs     string  `json:"extra_args"`
}

func has(data []byte, keys ...string) (map[string]json.RawMessage, bool) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) != nil {
		return nil, false
	}
	for _, k := range keys {
		if _, ok := probe[k]; ok {
			return probe, true
		}
	}
	return probe, false
}

func (h *handlers) fleetStart(w http.ResponseWriter, r *http.Request) {
	const action = "fleet.start"
	data, ok1 := h.body(w, r, action)
	if !ok1 {
		return
	}
	if _, ours := has(data, "fleet_yaml", "template_yaml"); ours {
		h.ourFleetStart(w, r, data)
		return
	}
	var body upstreamStart
	if !h.decode(w, r, data, &body, action) {
		return
	}
	// Upstream appended extra_args to each child's command line, where
	// they could replace the graph (D-FLT-5); streams run in-process here.
	if strings.TrimSpace(body.ExtraArgs) != "" {
		h.refused(w, r, action, "fleet", http.StatusBadRequest, kindRequest,
			"extra_args is not supported: streams run as graphs inside schnitzel serve, not as child processes")
		return
	}
	logDir, ok2 := h.logDir(w, r, action, body.LogDir)
	if !ok2 {
		return
	}
	cfgPath := upstreamFleet
	if body.Config != nil && *body.Config != "" {
		cfgPath = *body.Config
	}
	cfgRes, err := h.paths.Resolve(cfgPath)
	if err != nil {
		h.pathError(w, r, action, "config", err)
		return
	}
	fleetText, err := cfgRes.ReadFile()
	if err != nil {
		h.pathError(w, r, action, "config", err)
		return
	}
	tmplPath := upstreamTemplate
	if body.GraphTemplate != nil && *body.GraphTemplate != "" {
		tmplPath = *body.GraphTemplate
	}
	tmplName, tmplText := tmplPath, []byte(nil)
	tmplRes, err := h.paths.Resolve(tmplPath)
	if err == nil {
		tmplText, err = tmplRes.ReadFile()
		tmplName = tmplRes.Abs
	}
	if err != nil {
		// Upstream's default template is built in: a file of that name in
		// the graphs dir takes precedence.
		if tmplPath != upstreamTemplate || errors.Is(err, errOutside) {
			h.pathError(w, r, action, "graph_template", err)
			return
		}
		tmplName, tmplText = "(built in) "+upstreamTemplate, fleet.DefaultTemplate
	}
	var ids []string
	for _, id := range strings.Split(body.Streams, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	plan, err := h.m.Prepare(fleet.Input{FleetName: cfgRes.Abs, Fleet: fleetText, TemplateName: tmplName, Template: tmplText,
		Streams: ids, BaseDir: filepath.Dir(cfgRes.Abs)})
	if err != nil {
		status := http.StatusUnprocessableEntity
		var fe *fleet.Error
		var se *fleet.StreamError
		if !errors.As(err, &fe) && !errors.As(err, &se) {
			status = http.StatusBadRequest // no (matching) enabled streams
		}
		h.refused(w, r, action, logDir, status, kindRequest, err.Error())
		return
	}
	results := h.m.Apply(plan, api.Actor(r))
	lines, nFailed := make([]string, 0, len(results)+1), 0
	var started []string
	for _, res := range results {
		started = append(started, res.ID)
		switch res.Action {
		case "failed":
			nFailed++
			lines = append(lines, fmt.Sprintf("failed %s graph=%s: %s", res.ID, res.Graph, res.Error))
		case "unchanged":
			lines = append(lines, fmt.Sprintf("already running: %s (graph %s)", res.ID, res.Graph))
		default:
			lines = append(lines, fmt.Sprintf("%s %s graph=%s input_type=%s", res.Action, res.ID, res.Graph, res.Type))
		}
	}
	lines = append(lines, "done")
	answer := map[string]any{"config": cfgRes.Abs, "graph_template": tmplName, "log_dir": logDir, "lines": lines, "streams": results}
	meta := map[string]any{"streams": started, "graph_template": tmplName}
	if nFailed > 0 {
		reason := fmt.Sprintf("%d of %d streams failed", nFailed, len(results))
		h.audit(r, action, logDir, "error", reason, meta)
		failed(w, r, answer, kindRuntime, reason)
		return
	}
	h.audit(r, action, logDir, "ok", "ok", meta)
	answerOK(w, r, answer)
}

// logDir confines upstream's log_dir, which means nothing here (no PID
// or log files: the streams are graphs), so that it cannot be used to
// probe the file system (D-API-4). Absent: the state dir.
func (h *handlers) logDir(w http.ResponseWriter, r *http.Request, action string, raw *string) (string, bool) {
	if raw == nil || *raw == "" {
		return realDir(h.cfg.StateDir), true
	}
	res, err := h.paths.Resolve(*raw)
	if err != nil {
		h.pathError(w, r, action, "log_dir", err)
		return "", false
	}
	return res.Abs, true
}

func (h *handlers) ourFleetStart(w http.ResponseWriter, r *http.Request, data []byte) {
	const action = "fleet.start"
	var body ourStart
	if err := json.Unmarshal(data, &body); err != nil {
		h.audit(r, action, "fleet", "refused", "invalid request body", nil)
		api.WriteError(w, r, http.StatusBadRequest, "bad_request", "invalid request body: "+err.Error(), nil)
		return
	}
	if strings.TrimSpace(body.FleetYAML) == "" {
		h.audit(r, action, "fleet", "refused", "fleet_yaml is empty", nil)
		api.WriteError(w, r, http.StatusBadRequest, "bad_request", "fleet_yaml is required: the fleet file's text", nil)
		return
	}
	tmpl := []byte(body.TemplateYAML)
	tmplName := "template.yaml"
	if strings.TrimSpace(body.TemplateYAML) == "" {
		tmpl, tmplName = fleet.DefaultTemplate, "dev_stream_template_v2.yaml"
	}
	plan, err := h.m.Prepare(fleet.Input{FleetName: "fleet.yaml", Fleet: []byte(body.FleetYAML), TemplateName: tmplName, Template: tmpl,
		Streams: body.Streams, BaseDir: body.BaseDir})
	if err != nil {
		h.audit(r, action, "fleet", "refused", clip(err.Error(), 500), nil)
		writeFleetError(w, r, err)
		return
	}
	results := h.m.Apply(plan, api.Actor(r))
	allOK := true
	var ids []string
	for _, res := range results {
		ids = append(ids, res.ID)
		allOK = allOK && res.Error == ""
	}
	status, reason := "ok", "ok"
	if !allOK {
		status, reason = "error", "some streams failed"
	}
	h.audit(r, action, "fleet", status, reason, map[string]any{"streams": ids})
	writeJSON(w, http.StatusOK, map[string]any{"ok": allOK, "streams": results})
}

// problemJSON is a fleet file problem in our error details.
type problemJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Stream  string `json:"stream,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// writeFleetError answers a failed Prepare for our CLI: 422 invalid_fleet
// (the fleet file's problems, with lines), 422 invalid_graph (a stream's
// graph: the template's diagnostics plus which stream), else 400.
func writeFleetError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fleet.Error
	if errors.As(err, &fe) {
		probs := make([]problemJSON, len(fe.Problems))
		for i, p := range fe.Problems {
			probs[i] = problemJSON{File: p.File, Line: p.Line, Stream: p.Stream, Field: p.Field, Message: p.Msg}
		}
		api.WriteError(w, r, http.StatusUnprocessableEntity, "invalid_fleet", err.Error(), map[string]any{"errors": probs})
		return
	}
	var streams []map[string]any
	var errs, warns []any
	for _, e := range unjoin(err) {
		var se *fleet.StreamError
		if !errors.As(e, &se) {
			continue
		}
		streams = append(streams, map[string]any{"id": se.Stream, "file": se.File, "line": se.Line, "message": se.Err.Error()})
		var inv *engine.InvalidError
		if errors.As(se.Err, &inv) {
			errs = append(errs, diagList(inv.Diags.Errors())...)
			warns = append(warns, diagList(inv.Diags.Warnings())...)
		}
	}
	if streams != nil {
		if errs == nil {
			errs = []any{}
		}
		if warns == nil {
			warns = []any{}
		}
		api.WriteError(w, r, http.StatusUnprocessableEntity, "invalid_graph", err.Error(),
			map[string]any{"errors": errs, "warnings": warns, "streams": streams})
		return
	}
	api.WriteError(w, r, http.StatusBadRequest, "bad_request", err.Error(), nil)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (h *handlers) fleetStop(w http.ResponseWriter, r *http.Request) {
	const action = "fleet.stop"
	data, ok1 := h.body(w, r, action)
	if !ok1 {
		return
	}
	if probe, ours := has(data, "streams"); ours && isArray(probe["streams"]) {
		var body struct {
			Streams []string `json:"streams"`
		}
		if err := json.Unmarshal(data, &body); err != nil {
			h.audit(r, action, "fleet", "refused", "invalid request body", nil)
			api.WriteError(w, r, http.StatusBadRequest, "bad_request", "invalid request body: "+err.Error(), nil)
			return
		}
		results, err := h.m.Stop(body.Streams, api.Actor(r))
		if err != nil {
			h.audit(r, action, "fleet", "refused", err.Error(), nil)
			api.WriteError(w, r, http.StatusBadRequest, "bad_request", err.Error(), nil)
			return
		}
		allOK, stopped := true, []string{}
		for _, res := range results {
			allOK = allOK && res.Error == ""
			if res.Error == "" {
				stopped = append(stopped, res.ID)
			}
		}
		status := "ok"
		if !allOK {
			status = "error"
		}
		h.audit(r, action, "fleet", status, status, map[string]any{"stopped": stopped})
		writeJSON(w, http.StatusOK, map[string]any{"ok": allOK, "streams": results})
		return
	}
	var body struct {
		LogDir *string `json:"log_dir"`
	}
	if !h.decode(w, r, data, &body, action) {
		return
	}
	logDir, ok2 := h.logDir(w, r, action, body.LogDir)
	if !ok2 {
		return
	}
	// Only graphs of origin fleet are deleted; no PID is ever signalled
	// (upstream killed whatever a .pid file named: D-API-5, D-FLT-3/4).
	results, err := h.m.Stop(nil, api.Actor(r))
	if err != nil {
		h.refused(w, r, action, logDir, http.StatusBadRequest, kindRequest, err.Error())
		return
	}
	lines, stopped := []string{}, 0
	for _, res := range results {
		if res.Error != "" {
			lines = append(lines, fmt.Sprintf("failed %s graph=%s: %s", res.ID, res.Graph, res.Error))
			continue
		}
		stopped++
		lines = append(lines, fmt.Sprintf("stopped %s graph=%s", res.ID, res.Graph))
	}
	lines = append(lines, "stopped_count="+strconv.Itoa(stopped))
	h.audit(r, action, logDir, "ok", "ok", map[string]any{"stopped": stopped})
	answerOK(w, r, map[string]any{"log_dir": logDir, "stopped_count": stopped, "lines": lines, "streams": results})
}

func isArray(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return strings.HasPrefix(s, "[")
}

// statusAnswer is upstream's envelope plus our CLI's top-level streams.
type statusAnswer struct {
	envelope
	Streams []fleet.StreamStatus `json:"streams"`
}

func (h *handlers) fleetStatus(w http.ResponseWriter, r *http.Request) {
	logDir, ok1 := h.logDirQuery(w, r)
	if !ok1 {
		return
	}
	rows := h.m.Status()
	if rows == nil {
		rows = []fleet.StreamStatus{}
	}
	lines, running := make([]string, 0, len(rows)+1), 0
	for _, s := range rows {
		if s.State == serve.StateRunning {
			running++
		}
		lines = append(lines, fmt.Sprintf("%s: graph=%s status=%s", s.ID, s.Graph, s.State))
	}
	lines = append(lines, fmt.Sprintf("summary: running=%d total=%d", running, len(rows)))
	e := newEnvelope(r, map[string]any{"log_dir": logDir, "running": running, "total": len(rows), "lines": lines, "streams": rows})
	writeJSON(w, http.StatusOK, statusAnswer{envelope: e, Streams: rows})
}

func (h *handlers) logDirQuery(w http.ResponseWriter, r *http.Request) (string, bool) {
	q := r.URL.Query()
	if !q.Has("log_dir") {
		return h.logDir(w, r, "", nil)
	}
	v := q.Get("log_dir")
	return h.logDir(w, r, "", &v)
}

func (h *handlers) intQuery(w http.ResponseWriter, r *http.Request, key string, def, lo, hi int) (int, bool) {
	raw := r.URL.Query().Get(key)
	if raw == "" {
		return def, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		refuse(w, r, http.StatusUnprocessableEntity, kindRequest, fmt.Sprintf("%s must be an integer in [%d, %d], not %s", key, lo, hi, quote(clip(raw, 40))))
		return 0, false
	}
	return n, true
}

// monitorSnapshot is upstream's monitor snapshot, built from the
// supervisor's live state (Backend.List/Get), not by re-reading log files
// on every call (D-MON-1) or guessing events from log lines (D-MON-2):
// events_total is what the stream's sinks consumed, eps_window their rate.
func (h *handlers) monitorSnapshot(w http.ResponseWriter, r *http.Request) {
	logDir, ok1 := h.logDirQuery(w, r)
	if !ok1 {
		return
	}
	if _, ok2 := h.intQuery(w, r, "window_sec", 10, 1, math.MaxInt32); !ok2 {
		return
	}
	if _, ok2 := h.intQuery(w, r, "tail_lines", 2, 1, math.MaxInt32); !ok2 {
		return
	}
	rows := []map[string]any{}
	running := 0
	for _, s := range h.m.Status() {
		var events int64
		tailParts := []string{}
		if d, err := h.b.Get(s.Graph); err == nil {
			for _, n := range d.Nodes {
				if n.Kind == "sink" {
					events += n.Consumed
				}
			}
			if d.ReloadError != "" {
				tailParts = append(tailParts, d.ReloadError)
			}
		}
		if s.LastError != "" {
			tailParts = append(tailParts, s.LastError)
		}
		if s.State == serve.StateRunning {
			running++
		}
		rows = append(rows, map[string]any{
			"stream_id": s.ID, "pid": nil, "status": string(s.State), "events_total": events,
			"eps_window": math.Round(s.InPerSec*1000) / 1000, "last_packet_ts": nil, "last_log_age_sec": nil,
			"last_error_tail": strings.Join(tailParts, " | "),
			"graph":           s.Graph, "restarts": s.Restarts,
		})
	}
	answerOK(w, r, map[string]any{"snapshot": map[string]any{"ts": tsNow(), "log_dir": logDir, "streams_total": len(rows),
		"running_total": running, "streams": rows}})
}

// policySnapshot is upstream's governance snapshot. The route list and
// each route's mode come from the route table itself, so they cannot
// drift from the code (D-API-9).
func (h *handlers) policySnapshot(w http.ResponseWriter, r *http.Request) {
	getenv := h.cfg.Engine.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	pol := plugin.PolicyFromEnv(getenv)
	prefixes := append([]string{}, pol.Prefixes...)
	if strings.TrimSpace(getenv("ALLOWED_PLUGIN_PREFIXES")) == "" {
		prefixes = append(prefixes, h.cfg.Engine.Prefixes...)
	}
	// Every route the server has (ours and these), with the middleware's
	// switches; upstream's access mode where the route is upstream's.
	modes := map[string]mode{}
	mutating := []string{}
	for _, d := range h.table {
		modes[d.method+" "+d.pattern] = d.mode
		if d.mode == modeMutate {
			mutating = append(mutating, d.method+" "+d.pattern)
		}
	}
	routes := []map[string]any{}
	for _, rt := range h.srv.Routes() {
		row := map[string]any{"method": rt.Method, "path": rt.Pattern, "auth": !rt.Open, "mutation_checks": rt.Mutates}
		if m, ok := modes[rt.Method+" "+rt.Pattern]; ok {
			row["mode"] = string(m)
		}
		routes = append(routes, row)
	}
	answerOK(w, r, map[string]any{
		"security_mode": "local+bearer", "token_required": true, "mutation_auth_mode": "global_bearer",
		"local_mutation_override_enabled": false, "allowed_plugin_prefixes": prefixes, "allow_all_plugins": pol.AllowAll,
		"audit_path": h.auditPath(), "audit_retention": h.retention(), "routes": routes, "mutating_endpoints": mutating,
	})
}

func (h *handlers) auditPath() string {
	if h.cfg.Audit == nil {
		return ""
	}
	return h.cfg.Audit.Path()
}

func (h *handlers) retention() map[string]any {
	if h.cfg.Audit == nil {
		return map[string]any{"max_bytes": 0, "max_files": 0}
	}
	mb, mf := h.cfg.Audit.Limits()
	return map[string]any{"max_bytes": mb, "max_files": mf}
}

// auditEvent is one audit line with every key upstream writes, in its
// order (control_api/audit.py).
type auditEvent struct {
	EventID   string         `json:"event_id"`
	TS        string         `json:"ts"`
	Actor     string         `json:"actor"`
	Action    string         `json:"action"`
	Target    string         `json:"target"`
	Status    string         `json:"status"`
	Reason    string         `json:"reason"`
	RequestID string         `json:"request_id"`
	Meta      map[string]any `json:"meta"`
}

// parseSince takes what upstream's tail takes (ISO 8601, a trailing Z,
// a naive time as UTC, a date); an unparseable since is a 422, where
// upstream silently dropped the filter (D-AUD-2).
func parseSince(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("since must be an ISO 8601 time (2026-03-03T10:00:00Z), not %s", quote(clip(s, 60)))
}

func (h *handlers) auditTail(w http.ResponseWriter, r *http.Request) {
	limit, ok1 := h.intQuery(w, r, "limit", 50, 1, 1000)
	if !ok1 {
		return
	}
	since, err := parseSince(r.URL.Query().Get("since"))
	if err != nil {
		refuse(w, r, http.StatusUnprocessableEntity, kindRequest, err.Error())
		return
	}
	events := []auditEvent{}
	if h.cfg.Audit != nil {
		evs, err := h.cfg.Audit.Tail(since, limit)
		if err != nil {
			refuse(w, r, http.StatusInternalServerError, kindInternal, "the audit log could not be read")
			return
		}
		for _, e := range evs {
			events = append(events, toUpstream(e))
		}
	}
	answerOK(w, r, map[string]any{"audit_path": h.auditPath(), "count": len(events), "events": events})
}

func toUpstream(e audit.Event) auditEvent {
	meta := e.Meta
	if meta == nil {
		meta = map[string]any{}
	}
	return auditEvent{EventID: e.EventID, TS: e.TS, Actor: e.Actor, Action: e.Action, Target: e.Target, Status: e.Status,
		Reason: e.Reason, RequestID: e.RequestID, Meta: meta}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func quote(s string) string { return strconv.Quote(s) }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
