package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/serve"
)

// Tap stream timing: drop counts go out at least this often while they
// grow; a comment line keeps idle streams alive through proxies; a write
// that cannot finish in writeWait means the client is gone or too slow,
// and the stream ends (the graph never waits for it either way).
var (
	droppedEvery   = 500 * time.Millisecond
	keepaliveEvery = 15 * time.Second
	writeWait      = 10 * time.Second
)

const maxTapLimit = 1_000_000

// tap is GET /api/v1/graphs/{name}/tap?node=ID[&port=P][&limit=N]:
// Server-Sent Events of the packets the node emits.
func (s *Server) tap(w http.ResponseWriter, r *http.Request) {
	name, ok := s.name(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	node, port := q.Get("node"), q.Get("port")
	if node == "" || len(node) > 256 || len(port) > 256 {
		WriteError(w, r, http.StatusBadRequest, "bad_request", "tap needs ?node=ID (and optionally &port=P, &limit=N)", nil)
		return
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTapLimit {
			WriteError(w, r, http.StatusBadRequest, "bad_request", "limit must be an integer from 1 to 1000000", nil)
			return
		}
		limit = n
	}
	if s.taps.Add(1) > s.maxTaps {
		s.taps.Add(-1)
		s.refuse(w, r, "request.refused", http.StatusTooManyRequests, "too_many",
			"too many tap streams open on this server (limit "+itoa(s.maxTaps)+"); close one and retry", "too many tap streams", nil)
		return
	}
	defer s.taps.Add(-1)

	st, err := s.b.Tap(name, node, port)
	if err != nil {
		reason := s.backendError(w, r, err)
		if errors.Is(err, serve.ErrTooMany) && s.refusals.allow() {
			s.Audit(r, "request.refused", clip(r.URL.Path, 200), "refused", reason, nil)
		}
		return
	}
	defer st.Close()

	rc := http.NewResponseController(w)
	// The server's ReadTimeout would otherwise cancel the request context
	// of a long stream; the stream ends on disconnect, write failure,
	// limit or graph stop.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	send := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	// Headers go out now, so the client knows the stream is open before
	// the first packet.
	buf.WriteString(": tap " + strconv.QuoteToASCII(node) + "\n\n")
	if !send() {
		return
	}

	drops := time.NewTicker(droppedEvery)
	defer drops.Stop()
	alive := time.NewTicker(keepaliveEvery)
	defer alive.Stop()
	var sentDropped int64
	dropped := func() {
		if d := st.Dropped(); d > sentDropped {
			sentDropped = d
			buf.WriteString("event: dropped\ndata: {\"dropped\":" + itoa(d) + "}\n\n")
		}
	}
	end := func(reason string) {
		dropped()
		buf.WriteString("event: end\ndata: {\"reason\":" + strconv.Quote(reason) + "}\n\n")
		send()
	}
	events, n := st.Events(), 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.quit:
			end("server shutting down")
			return
		case ev, ok := <-events:
			if !ok {
				end("graph stopped")
				return
			}
			buf.WriteString("event: packet\n")
			// A packet line has no raw newline (JSON escapes them); split
			// anyway so that a stray one cannot forge an SSE field.
			for line := range bytes.SplitSeq(ev, []byte("\n")) {
				buf.WriteString("data: ")
				buf.Write(bytes.TrimSuffix(line, []byte("\r")))
				buf.WriteByte('\n')
			}
			buf.WriteByte('\n')
			n++
			if limit > 0 && n >= limit {
				end("limit")
				return
			}
			if !send() {
				return
			}
		case <-drops.C:
			dropped()
			if buf.Len() > 0 && !send() {
				return
			}
		case <-alive.C:
			buf.WriteString(": keepalive\n\n")
			if !send() {
				return
			}
		}
	}
}

// NewHTTPServer is the http.Server for h with timeouts against slow or
// hostile clients; for a *Server, Shutdown also ends the tap streams. WriteTimeout stays 0 because tap streams are long; the
// tap handler sets a deadline on each write instead.
func NewHTTPServer(h http.Handler, addr string) *http.Server {
	hs := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if s, ok := h.(*Server); ok {
		hs.RegisterOnShutdown(s.CloseStreams)
	}
	return hs
}
