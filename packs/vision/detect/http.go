package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// RequestHeader is the HTTP header that carries the request JSON.
const RequestHeader = "X-Schnitzel-Request"

// HTTP is an adapter behind a URL: one POST per frame.
type HTTP struct {
	URL     string
	Timeout time.Duration
	Client  *http.Client // nil: a client of our own

	mu  sync.Mutex
	seq int64
}

// Name is the URL.
func (h *HTTP) Name() string { return h.URL }

// Restarts is always 0: there is no process of ours to restart.
func (h *HTTP) Restarts() int64 { return 0 }

// Start does nothing: a server that is down shows as transport errors per
// frame, counted, so a graph can start before its model server.
func (h *HTTP) Start() error { return nil }

// Close releases idle connections.
func (h *HTTP) Close(context.Context) error {
	if h.Client != nil {
		h.Client.CloseIdleConnections()
	}
	return nil
}

// Detect posts the image and parses the answer. A non-2xx status is an
// adapter error carrying the start of the body; the answer's "id" is
// optional but must match when given.
func (h *HTTP) Detect(parent context.Context, req *Request, img []byte) ([]Detection, error) {
	h.mu.Lock()
	if h.Client == nil {
		h.Client = &http.Client{}
	}
	h.seq++
	req.ID = h.seq
	h.mu.Unlock()
	req.Bytes = len(img)
	hdr, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: encode request: %w", h.URL, err)
	}
	ctx, cancel := context.WithTimeout(parent, h.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(img))
	if err != nil {
		return nil, &Error{Kind: KindTransport, Adapter: h.URL, Err: err}
	}
	ct := "image/jpeg"
	if req.Format != FormatJPEG {
		ct = "application/octet-stream"
	}
	hr.Header.Set("Content-Type", ct)
	hr.Header.Set(RequestHeader, string(hdr))
	resp, err := h.Client.Do(hr)
	if err != nil && parent.Err() != nil {
		return nil, parent.Err() // the caller stopped: not an adapter failure
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &Error{Kind: KindTimeout, Adapter: h.URL, Err: fmt.Errorf("request %d: no answer within %s", req.ID, h.Timeout)}
		}
		return nil, &Error{Kind: KindTransport, Adapter: h.URL, Err: fmt.Errorf("request %d: %v", req.ID, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil && parent.Err() != nil {
		return nil, parent.Err()
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &Error{Kind: KindTimeout, Adapter: h.URL, Err: fmt.Errorf("request %d: answer not complete within %s", req.ID, h.Timeout)}
		}
		return nil, &Error{Kind: KindTransport, Adapter: h.URL, Err: fmt.Errorf("request %d: reading answer: %v", req.ID, err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &Error{Kind: KindAdapter, Adapter: h.URL, Err: fmt.Errorf("request %d: HTTP %s: %s", req.ID, resp.Status, excerpt(body))}
	}
	if len(body) > maxResponse {
		return nil, &Error{Kind: KindGarbage, Adapter: h.URL, Err: fmt.Errorf("request %d: answer larger than %d bytes", req.ID, maxResponse)}
	}
	r, err := ParseResponse(body, false)
	if err != nil {
		return nil, &Error{Kind: KindGarbage, Adapter: h.URL, Err: fmt.Errorf("request %d: bad answer %s: %v", req.ID, excerpt(body), err)}
	}
	if r.HasID && r.ID != req.ID {
		return nil, &Error{Kind: KindGarbage, Adapter: h.URL, Err: fmt.Errorf("request %d: answer carries id %d", req.ID, r.ID)}
	}
	if r.Err != "" {
		return nil, &Error{Kind: KindAdapter, Adapter: h.URL, Err: fmt.Errorf("request %d: %s", req.ID, r.Err)}
	}
	return r.Detections, nil
}
