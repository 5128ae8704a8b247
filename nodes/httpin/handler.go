package httpin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// maxHeaderValue bounds the header values copied into packets.
const maxHeaderValue = 256

func (s *source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	// Close waits for handlers; one that starts after (a connection the
	// forced close left reading) answers at once, uncounted there.
	s.hmu.RLock()
	if s.closed {
		s.hmu.RUnlock()
		s.unavailable(w, "stopped")
		return
	}
	s.handlers.Add(1)
	s.hmu.RUnlock()
	defer s.handlers.Done()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > maxHeaderValue {
		id = packet.NewID()
	}
	w.Header().Set("X-Request-Id", id)
	switch r.URL.Path {
	case s.cfg.Path:
	case s.health:
		s.serveHealth(w, r)
		return
	default:
		s.fail(w, http.StatusNotFound, s.badRequest, "no endpoint at %s (POST to %s)", r.URL.Path, s.cfg.Path)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.fail(w, http.StatusMethodNotAllowed, s.badRequest, "method %s not allowed: POST to %s", r.Method, s.cfg.Path)
		return
	}
	// The token is checked before a slot is taken, so that clients
	// without it cannot hold the slots of those with it.
	if s.cfg.Token != "" && !s.tokenOK(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="schnitzel ingest", error="invalid_token"`)
		s.warnAuth.Warn(s.env.Logger, "http ingest: missing or wrong bearer token", "remote", r.RemoteAddr)
		s.fail(w, http.StatusUnauthorized, s.unauthorized, "missing or wrong bearer token (Authorization: Bearer <token>)")
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.throttle(w, "%d requests in flight (max_inflight)", s.cfg.MaxInflight)
		return
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	start := time.Now()
	ndjson, err := s.format(r.Header.Get("Content-Type"))
	if err != nil {
		s.fail(w, http.StatusUnsupportedMediaType, s.badRequest, "%v", err)
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		s.fail(w, http.StatusRequestEntityTooLarge, s.tooLarge, "body of %d bytes exceeds max_body_bytes %d", r.ContentLength, s.cfg.MaxBodyBytes)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.fail(w, http.StatusRequestEntityTooLarge, s.tooLarge, "body exceeds max_body_bytes %d", s.cfg.MaxBodyBytes)
			return
		}
		s.fail(w, http.StatusBadRequest, s.badRequest, "reading the body: %v", err)
		return
	}
	if s.cfg.HMACSecret != "" {
		if code, msg := s.signatureOK(r.Header.Get(s.cfg.HMACHeader), body); code != 0 {
			s.warnAuth.Warn(s.env.Logger, "http ingest: "+msg, "remote", r.RemoteAddr)
			s.fail(w, code, s.unauthorized, "%s", msg)
			return
		}
	}
	values, err := decode(body, ndjson)
	if err != nil {
		s.fail(w, http.StatusBadRequest, s.badRequest, "%v", err)
		return
	}
	sourceID := s.cfg.SourceID
	if h := s.cfg.SourceIDHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			if len(v) > maxHeaderValue {
				s.fail(w, http.StatusBadRequest, s.badRequest, "header %s longer than %d bytes", h, maxHeaderValue)
				return
			}
			sourceID = v
		}
	}
	idem := r.Header.Get("Idempotency-Key")
	if len(idem) > maxHeaderValue {
		s.fail(w, http.StatusBadRequest, s.badRequest, "header Idempotency-Key longer than %d bytes", maxHeaderValue)
		return
	}
	if len(values) == 0 {
		s.ok(w, 0)
		return
	}
	req := &request{pkts: make([]*packet.Packet, len(values)), emitted: make(chan error, 1)}
	if s.after {
		req.pending.Store(int64(len(values)))
		req.committed = make(chan struct{})
		req.nacked = make(chan error, 1)
	}
	ts := packet.Now()
	// One meta for the request's packets: packets are read-only once
	// emitted, so they may share it; only an idempotency key differs.
	shared := packet.NewMap(4)
	shared.AppendNew("http_remote", r.RemoteAddr)
	shared.AppendNew("http_path", r.URL.Path)
	shared.AppendNew("http_request_id", id)
	for i, v := range values {
		meta := shared
		if idem != "" {
			meta = shared.Clone(1)
			meta.AppendNew("idempotency_key", idem+"#"+strconv.Itoa(i))
		}
		p := &packet.Packet{ID: packet.NewID(), TS: ts, Kind: s.cfg.Kind, SourceID: sourceID, Payload: v, Meta: meta}
		if s.after {
			req.watch(p)
		}
		req.pkts[i] = p
	}
	s.handOff(w, r, req, start)
}

// handOff gives req to Run and answers once its packets are downstream
// (on_accept) or committed (after_commit).
func (s *source) handOff(w http.ResponseWriter, r *http.Request, req *request, start time.Time) {
	n := len(req.pkts)
	handoff := time.NewTimer(s.cfg.HandoffTimeoutSec.Duration())
	defer handoff.Stop()
	select {
	case s.reqs <- req:
	case <-handoff.C:
		s.throttle(w, "the graph did not take the request within handoff_timeout_sec %v (hand-off queue of %d full)", float64(s.cfg.HandoffTimeoutSec), s.cfg.QueueSize)
		return
	case <-s.stopping:
		s.unavailable(w, "stopping: nothing of this request was accepted")
		return
	case <-r.Context().Done():
		return // the client left; nothing was emitted
	}
	// Queued: Run takes it, or the handler gives it up (429 / 503) when
	// it has not been taken in time. Once taken, the wait for the graph
	// (Emit may block) and for the commit share ack_timeout_sec.
	deadline := time.NewTimer(s.cfg.AckTimeoutSec.Duration() - time.Since(start))
	defer deadline.Stop()
	giveUp := func() bool { return req.state.CompareAndSwap(queued, abandoned) }
	var err error
	inEmit := true // taken by Run, its packets not all emitted yet
	select {
	case err = <-req.emitted:
		inEmit = false
	case <-handoff.C:
		if giveUp() {
			s.throttle(w, "the graph did not take the request within handoff_timeout_sec %v", float64(s.cfg.HandoffTimeoutSec))
			return
		}
	case <-s.stopping:
		if giveUp() {
			s.unavailable(w, "stopping: nothing of this request was accepted")
			return
		}
	case <-r.Context().Done():
		if giveUp() {
			return
		}
	}
	if inEmit {
		select {
		case err = <-req.emitted:
		case <-deadline.C:
			s.warnCommit.Warn(s.env.Logger, "http ingest: the graph did not take a request's packets within ack_timeout_sec, answered 503",
				"request_id", w.Header().Get("X-Request-Id"), "packets", n, "ack_timeout_sec", float64(s.cfg.AckTimeoutSec))
			s.unavailable(w, fmt.Sprintf("the graph is still taking the packets after ack_timeout_sec %v; they may still be delivered: retry with the same Idempotency-Key", float64(s.cfg.AckTimeoutSec)))
			return
		}
	}
	if err != nil {
		s.unavailable(w, "stopping: the request was cut off while its packets were handed downstream; retry (with the same Idempotency-Key)")
		return
	}
	if !s.after {
		s.ok(w, n)
		return
	}
	select {
	case <-req.committed:
		s.ok(w, n)
	case err := <-req.nacked:
		s.warnCommit.Warn(s.env.Logger, "http ingest: a packet was not stored", "request_id", w.Header().Get("X-Request-Id"), "err", err)
		s.unavailable(w, fmt.Sprintf("not stored downstream: %v; retry (with the same Idempotency-Key)", err))
	case <-deadline.C:
		left := req.pending.Load()
		s.warnCommit.Warn(s.env.Logger, "http ingest: no commit within ack_timeout_sec, answered 503",
			"request_id", w.Header().Get("X-Request-Id"), "packets", n, "not_committed", left, "ack_timeout_sec", float64(s.cfg.AckTimeoutSec))
		s.unavailable(w, fmt.Sprintf("%d of %d packets not committed within ack_timeout_sec %v; they may still be stored: retry with the same Idempotency-Key", left, n, float64(s.cfg.AckTimeoutSec)))
	case <-s.closing:
		s.unavailable(w, "stopped before the packets were committed; retry (with the same Idempotency-Key)")
	}
}

func (s *source) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, http.StatusMethodNotAllowed, s.badRequest, "method %s not allowed: GET %s", r.Method, s.health)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	select {
	case <-s.stopping:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"stopping"}`+"\n")
	default:
		io.WriteString(w, `{"status":"ok"}`+"\n")
	}
}

// tokenOK compares the bearer token in constant time; hashing both sides
// first keeps the token's length from showing in the timing too.
func (s *source) tokenOK(auth string) bool {
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	want := sha256.Sum256([]byte(s.cfg.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// signatureOK checks a GitHub-style body signature: sha256=<hex>. It
// returns 0 when it matches, else the status and the reason.
func (s *source) signatureOK(header string, body []byte) (int, string) {
	if header == "" {
		return http.StatusUnauthorized, "missing body signature header " + s.cfg.HMACHeader + " (sha256=<hex HMAC-SHA256 of the body>)"
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(got) != sha256.Size {
		return http.StatusForbidden, "malformed " + s.cfg.HMACHeader + ": want sha256=<64 hex digits>"
	}
	mac := hmac.New(sha256.New, []byte(s.cfg.HMACSecret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return http.StatusForbidden, "body signature in " + s.cfg.HMACHeader + " does not match"
	}
	return 0, ""
}

// format reads the Content-Type: whether the body is NDJSON, or why it
// is refused.
func (s *source) format(ct string) (ndjson bool, err error) {
	mt := ""
	if ct != "" {
		mt, _, err = mime.ParseMediaType(ct)
		if err != nil {
			return false, fmt.Errorf("unreadable Content-Type %q: %v", ct, err)
		}
	}
	isND := mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl" || mt == "application/x-jsonlines"
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json")
	switch {
	case mt == "":
		return s.cfg.Format == FormatNDJSON, nil
	case isND && s.cfg.Format != FormatJSON:
		return true, nil
	case isJSON && s.cfg.Format != FormatNDJSON:
		return false, nil
	}
	want := "application/json or application/x-ndjson"
	switch s.cfg.Format {
	case FormatJSON:
		want = "application/json"
	case FormatNDJSON:
		want = "application/x-ndjson"
	}
	return false, fmt.Errorf("Content-Type %s not accepted (format %s): send Content-Type: %s", mt, s.cfg.Format, want)
}

// decode turns a body into packet payloads: NDJSON one per non-blank
// line; JSON an array's elements, or the one value.
func decode(body []byte, ndjson bool) ([]any, error) {
	if ndjson {
		var out []any
		for line := 1; len(body) > 0; line++ {
			l := body
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				l, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			v, err := packet.DecodeJSON(l)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			out = append(out, v)
		}
		return out, nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty body: want a JSON object or array")
	}
	v, err := packet.DecodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if a, ok := v.([]any); ok {
		return a, nil
	}
	return []any{v}, nil
}

func (s *source) ok(w http.ResponseWriter, n int) {
	s.accepted.Add(int64(n))
	code := http.StatusOK
	if s.after {
		code = http.StatusAccepted
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(strconv.AppendInt([]byte(`{"accepted":`), int64(n), 10))
	io.WriteString(w, "}\n")
}

func (s *source) throttle(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Retry-After", strconv.Itoa(s.cfg.RetryAfterSec))
	s.fail(w, http.StatusTooManyRequests, s.throttled, format, args...)
}

func (s *source) unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(s.cfg.RetryAfterSec))
	s.fail(w, http.StatusServiceUnavailable, s.notCommitted, "%s", msg)
}

// fail answers {"error": "...", "accepted": 0} and counts it.
func (s *source) fail(w http.ResponseWriter, code int, counter *plugin.Counter, format string, args ...any) {
	counter.Add(1)
	b := append([]byte(`{"error":`), packet.AppendString(nil, fmt.Sprintf(format, args...))...)
	b = append(b, `,"accepted":0}`+"\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(b)
}
