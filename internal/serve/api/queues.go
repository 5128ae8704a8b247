package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/queue"
)

// The queue routes open only the files the graphs' durable nodes use
// (Backend.Queues): a client names one of those paths, never an arbitrary
// file. Stats and peek open the file read-only (nothing is written, as
// `schnitzel queue stats|peek`); requeue writes, sharing the running
// graph's connection (internal/queue pools one per file).

const (
	queueTimeout  = 30 * time.Second
	maxPeekLimit  = 500
	defPeekLimit  = 50
	maxRequeueSeq = 10000
)

type queueNode struct {
	Graph  string `json:"graph"`
	Node   string `json:"node"`
	Plugin string `json:"plugin"`
}

type queueInfo struct {
	Path         string      `json:"path"`
	Graphs       []string    `json:"graphs"`
	Nodes        []queueNode `json:"nodes"`
	Exists       bool        `json:"exists"`
	Rows         int64       `json:"rows"`
	Leased       int64       `json:"leased"`
	Retrying     int64       `json:"retrying"` // waiting out a retry backoff
	Retried      int64       `json:"retried"`  // queued rows with a failed attempt
	Dead         int64       `json:"dead"`
	OldestAgeSec *float64    `json:"oldest_age_sec"` // null when empty
	FileBytes    int64       `json:"file_bytes"`
	Error        string      `json:"error,omitempty"`
}

// queueSet groups the backend's queue nodes by file.
func (s *Server) queueSet() (map[string]*queueInfo, []string) {
	m := map[string]*queueInfo{}
	var order []string
	for _, q := range s.b.Queues() {
		qi := m[q.Path]
		if qi == nil {
			qi = &queueInfo{Path: q.Path, Graphs: []string{}, Nodes: []queueNode{}}
			m[q.Path] = qi
			order = append(order, q.Path)
		}
		if !slices.Contains(qi.Graphs, q.Graph) {
			qi.Graphs = append(qi.Graphs, q.Graph)
		}
		qi.Nodes = append(qi.Nodes, queueNode{Graph: q.Graph, Node: q.Node, Plugin: q.Plugin})
	}
	slices.Sort(order)
	return m, order
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) {
	m, order := s.queueSet()
	out := make([]*queueInfo, 0, len(order))
	for _, p := range order {
		qi := m[p]
		s.fillStats(r.Context(), qi)
		out = append(out, qi)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}

func (s *Server) fillStats(ctx context.Context, qi *queueInfo) {
	q, err := queue.Open(qi.Path, queue.Options{ReadOnly: true})
	if errors.Is(err, queue.ErrNotExist) {
		return // the sink has not written yet
	}
	if err != nil {
		qi.Error = queueErrText(err)
		return
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(ctx, queueTimeout)
	defer cancel()
	st, err := q.Stats(ctx)
	if err != nil {
		qi.Error = queueErrText(err)
		return
	}
	qi.Exists = true
	qi.Rows, qi.Leased, qi.Retrying, qi.Retried, qi.Dead, qi.FileBytes = st.Rows, st.Leased, st.Delayed, st.Retried, st.Dead, st.FileBytes
	if st.OldestEnqueue != "" {
		if t, err := time.Parse(time.RFC3339Nano, st.OldestEnqueue); err == nil {
			age := max(time.Since(t).Seconds(), 0)
			qi.OldestAgeSec = &age
		}
	}
}

// queueErrText says what is wrong with a file without the driver's
// details (they may quote the file's content).
func queueErrText(err error) string {
	switch {
	case errors.Is(err, queue.ErrNotQueue):
		return "not a queue file"
	case errors.Is(err, queue.ErrNewerSchema):
		return "written by a newer schnitzel (schema version)"
	}
	return "cannot read the queue file (the server log has the details)"
}

// queuePath returns the path query or body names when it is one of the
// graphs' queue files; otherwise it has answered 403 (audited).
func (s *Server) queuePath(w http.ResponseWriter, r *http.Request, p string) (string, bool) {
	if p != "" && filepath.IsAbs(p) {
		p = filepath.Clean(p)
		m, _ := s.queueSet()
		if _, ok := m[p]; ok {
			return p, true
		}
	}
	s.refuse(w, r, "request.refused", http.StatusForbidden, "forbidden",
		"path is not a queue file of a graph: pass a path from GET /api/v1/queues", "queue path not allowed",
		map[string]any{"path": strconv.QuoteToASCII(clip(p, 200))})
	return "", false
}

type peekRow struct {
	Seq        int64           `json:"seq"`
	Key        string          `json:"key"`
	PacketID   string          `json:"packet_id"`
	TS         string          `json:"ts"`
	Kind       string          `json:"kind"`
	SourceID   string          `json:"source_id"`
	Attempts   int             `json:"attempts"`
	LastError  string          `json:"last_error"`
	EnqueuedAt string          `json:"enqueued_at"`
	DeadAt     string          `json:"dead_at,omitempty"`
	Leased     bool            `json:"leased"`
	Payload    json.RawMessage `json:"payload"`
}

func (s *Server) peekQueue(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	p, ok := s.queuePath(w, r, qv.Get("path"))
	if !ok {
		return
	}
	limit := defPeekLimit
	if v := qv.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPeekLimit {
			WriteError(w, r, http.StatusBadRequest, "bad_request", "limit must be an integer from 1 to 500", nil)
			return
		}
		limit = n
	}
	var after int64
	if v := qv.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			WriteError(w, r, http.StatusBadRequest, "bad_request", "after must be a non-negative sequence number", nil)
			return
		}
		after = n
	}
	dead := truthy(qv.Get("dead"))
	q, err := queue.Open(p, queue.Options{ReadOnly: true})
	if errors.Is(err, queue.ErrNotExist) {
		writeJSON(w, http.StatusOK, map[string]any{"rows": []peekRow{}})
		return
	}
	if err != nil {
		s.queueError(w, r, err)
		return
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(r.Context(), queueTimeout)
	defer cancel()
	var es []queue.Entry
	if dead {
		es, err = q.Dead(ctx, after, limit)
	} else {
		es, err = q.Peek(ctx, after, limit)
	}
	if err != nil {
		s.queueError(w, r, err)
		return
	}
	rows := make([]peekRow, 0, len(es))
	for _, e := range es {
		pl := json.RawMessage(e.PayloadJSON)
		if !json.Valid(pl) {
			// Shown as a string: a row that does not decode is still a row.
			b, _ := json.Marshal(e.PayloadJSON)
			pl = b
		}
		rows = append(rows, peekRow{Seq: e.Seq, Key: e.Key, PacketID: e.PacketID, TS: e.TS, Kind: e.Kind, SourceID: e.SourceID,
			Attempts: e.Attempts, LastError: e.LastError, EnqueuedAt: e.EnqueuedAt, DeadAt: e.DeadAt, Leased: e.LeasedUntil != "", Payload: pl})
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows})
}

func (s *Server) queueError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("api: queue", "path", r.URL.Path, "request_id", RequestID(r), "err", err)
	WriteError(w, r, http.StatusInternalServerError, "internal", queueErrText(err)+" (request id "+RequestID(r)+")", nil)
}

func (s *Server) requeueQueue(w http.ResponseWriter, r *http.Request) {
	body, err := s.ReadBody(w, r)
	if err != nil {
		return
	}
	var req struct {
		Path string  `json:"path"`
		Seq  []int64 `json:"seq"`
		All  bool    `json:"all"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.refuse(w, r, "request.refused", http.StatusBadRequest, "bad_request",
			`body must be JSON {"path":"...","seq":[...]} or {"path":"...","all":true}`, "bad requeue body", nil)
		return
	}
	if req.All == (len(req.Seq) > 0) || len(req.Seq) > maxRequeueSeq {
		s.refuse(w, r, "request.refused", http.StatusBadRequest, "bad_request",
			`name the dead letters: "seq":[...] (at most 10000) or "all":true, one of them`, "bad requeue body", nil)
		return
	}
	p, ok := s.queuePath(w, r, req.Path)
	if !ok {
		return
	}
	meta := map[string]any{"all": req.All, "seqs": len(req.Seq)}
	q, err := queue.Open(p, queue.Options{MustExist: true})
	if err != nil {
		s.Audit(r, "queue.requeue", p, "error", queueErrText(err), meta)
		if errors.Is(err, queue.ErrNotExist) {
			WriteError(w, r, http.StatusNotFound, "not_found", "the queue file does not exist yet", nil)
			return
		}
		s.queueError(w, r, err)
		return
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(r.Context(), 2*queueTimeout)
	defer cancel()
	n, skipped, err := q.Requeue(ctx, req.Seq, nil)
	meta["requeued"], meta["skipped"] = n, skipped
	if err != nil {
		s.Audit(r, "queue.requeue", p, "error", queueErrText(err), meta)
		s.queueError(w, r, err)
		return
	}
	s.Audit(r, "queue.requeue", p, "ok", "ok", meta)
	writeJSON(w, http.StatusOK, map[string]any{"requeued": n, "skipped": skipped})
}
