package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
)

// errorBody is the one envelope of every error we answer (D-API-7).
type errorBody struct {
	Status    string    `json:"status"`
	RequestID string    `json:"request_id,omitempty"`
	Error     errorInfo `json:"error"`
}

type errorInfo struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Details any    `json:"details"`
}

// WriteError answers status with the error envelope
// {"status":"error","error":{"kind","message","details"}}.
func WriteError(w http.ResponseWriter, r *http.Request, status int, kind, msg string, details any) {
	writeJSON(w, status, errorBody{Status: "error", RequestID: RequestID(r), Error: errorInfo{Kind: kind, Message: msg, Details: details}})
}

// writeJSON answers v as JSON (no HTML escaping: YAML and diagnostics
// carry < and &, and the content type plus nosniff make it safe).
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"status":"error","error":{"kind":"internal","message":"response encoding failed","details":null}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// diagDetails is the details of invalid_graph: the same diagnostics
// `schnitzel validate --json` prints.
type diagDetails struct {
	Errors   []graph.Diag `json:"errors"`
	Warnings []graph.Diag `json:"warnings"`
}

func splitDiags(ds engine.Diags) diagDetails {
	return diagDetails{Errors: nonNil(ds.Errors()), Warnings: nonNil(ds.Warnings())}
}

func nonNil(ds graph.Diags) []graph.Diag {
	if ds == nil {
		return []graph.Diag{}
	}
	return ds
}

// backendError answers an error from the Backend and returns the audit
// reason. Unknown errors are 500 with a generic message: their text may
// name files or carry values from the environment, so it goes to the log
// only.
func (s *Server) backendError(w http.ResponseWriter, r *http.Request, err error) string {
	var inv *engine.InvalidError
	switch {
	case errors.As(err, &inv):
		n := len(inv.Diags.Errors())
		msg := "graph is invalid: " + itoa(int64(n)) + " error(s)"
		if n == 0 && inv.Strict {
			msg = "graph has warnings and strict validation is on"
		}
		WriteError(w, r, http.StatusUnprocessableEntity, "invalid_graph", msg, splitDiags(inv.Diags))
		return msg
	case errors.Is(err, serve.ErrNotFound):
		WriteError(w, r, http.StatusNotFound, "not_found", "no such graph", nil)
		return "no such graph"
	case errors.Is(err, serve.ErrBadName):
		WriteError(w, r, http.StatusBadRequest, "bad_name", badNameMsg, nil)
		return "bad graph name"
	case errors.Is(err, serve.ErrNoNode):
		WriteError(w, r, http.StatusNotFound, "not_found", "no such node (or port) in this graph", nil)
		return "no such node"
	case errors.Is(err, serve.ErrTooMany):
		WriteError(w, r, http.StatusTooManyRequests, "too_many", "too many tap streams open; close one and retry", nil)
		return "too many tap streams"
	case errors.Is(err, serve.ErrNotRunning):
		WriteError(w, r, http.StatusConflict, "conflict", "graph is not running: start it, then tap it", nil)
		return "graph not running"
	case errors.Is(err, serve.ErrReadOnly):
		WriteError(w, r, http.StatusConflict, "conflict", "this graph cannot be changed through the API (for example a v1 job file)", nil)
		return "read-only graph"
	}
	s.log.Error("api: backend error", "method", r.Method, "path", r.URL.Path, "request_id", RequestID(r), "err", err)
	WriteError(w, r, http.StatusInternalServerError, "internal", "internal error; the server log has the details (request id "+RequestID(r)+")", nil)
	return "internal error"
}
