// Package compat serves upstream's control API routes (its console and
// scripts speak them) on schnitzel serve: upstream's envelope and field
// names, with the defects of upstream's handlers fixed (docs/compat.md).
// Every route goes through the api.Server middleware: token, Host, Origin,
// content type, size limits, audit of refusals.
package compat

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
)

// envelope is upstream's response wrapper (control_api/app.py _envelope).
// Unlike upstream it is used for every status code, request errors
// included (D-API-7); Detail repeats the reason on 4xx/5xx answers, where
// upstream's scripts read FastAPI's {"detail": ...}.
type envelope struct {
	SchemaVersion int        `json:"schema_version"`
	Status        string     `json:"status"`
	RequestID     string     `json:"request_id"`
	TS            string     `json:"ts"`
	Data          any        `json:"data"`
	Error         *errorInfo `json:"error"`
	Detail        string     `json:"detail,omitempty"`
}

type errorInfo struct {
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// Error kinds. Upstream's domain kinds are kept; request errors, which
// upstream answered as {"detail"} without an envelope, get stable kinds.
const (
	kindValidation = "graph_validation_failed" // upstream
	kindRunFailed  = "graph_run_failed"        // upstream
	kindRuntime    = "runtime_failed"          // upstream
	kindRequest    = "request_invalid"         // 400 / 422
	kindForbidden  = "forbidden"               // 403: a path outside the graphs and state dirs
	kindNotFound   = "not_found"               // 404
	kindConflict   = "conflict"                // 409
	kindTooMany    = "too_many"                // 429
	kindTooLarge   = "too_large"               // 413
	kindInternal   = "internal"                // 500
)

// tsNow is Python's datetime.now(timezone.utc).isoformat().
func tsNow() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00") }

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"schema_version":1,"status":"error","request_id":"","ts":"","data":{},"error":{"kind":"internal","reason":"response encoding failed"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func newEnvelope(r *http.Request, data any) envelope {
	if data == nil {
		data = map[string]any{}
	}
	return envelope{SchemaVersion: 1, Status: "ok", RequestID: api.RequestID(r), TS: tsNow(), Data: data}
}

// answerOK answers HTTP 200 with status ok.
func answerOK(w http.ResponseWriter, r *http.Request, data any) {
	writeJSON(w, http.StatusOK, newEnvelope(r, data))
}

// failed answers HTTP 200 with status error: upstream's domain failure
// (validation failed, the run failed), which its console shows as output.
func failed(w http.ResponseWriter, r *http.Request, data any, kind, reason string) {
	e := newEnvelope(r, data)
	e.Status, e.Error = "error", &errorInfo{Kind: kind, Reason: reason}
	writeJSON(w, http.StatusOK, e)
}

// refuse answers a request error (4xx/5xx) in the envelope.
func refuse(w http.ResponseWriter, r *http.Request, status int, kind, reason string) {
	e := newEnvelope(r, nil)
	e.Status, e.Error, e.Detail = "error", &errorInfo{Kind: kind, Reason: reason}, reason
	writeJSON(w, status, e)
}
