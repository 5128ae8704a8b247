package legacy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// emitter delivers one event payload; Emit reports whether the event was
// taken (written, logged or queued).
type emitter interface {
	Emit(ctx context.Context, event *packet.Map) bool
	Close(ctx context.Context) error
}

// fileEmitter appends one JSON object per line and flushes each line.
type fileEmitter struct {
	f   *os.File
	buf []byte
	log *slog.Logger
}

func newFileEmitter(path string, log *slog.Logger) (*fileEmitter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("output jsonl: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output jsonl: %w", err)
	}
	return &fileEmitter{f: f, log: log}, nil
}

func (e *fileEmitter) Emit(_ context.Context, ev *packet.Map) bool {
	e.buf = append(packet.AppendJSON(e.buf[:0], ev, packet.Spaced), '\n')
	if _, err := e.f.Write(e.buf); err != nil {
		e.log.Error("output jsonl write failed", "path", e.f.Name(), "error", err)
		return false
	}
	return true
}

func (e *fileEmitter) Close(context.Context) error {
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	return err
}

// stdoutEmitter is --dry-run: each event is logged as DRY_RUN event=<json>.
type stdoutEmitter struct{ log *slog.Logger }

func (e stdoutEmitter) Emit(_ context.Context, ev *packet.Map) bool {
	e.log.Info("DRY_RUN event=" + string(packet.AppendJSON(nil, ev, packet.Spaced)))
	return true
}

func (stdoutEmitter) Close(context.Context) error { return nil }

// backendEmitter POSTs events to the backend from one worker behind a
// bounded queue, so a slow backend never stalls frame processing: a full
// queue drops the event (counted). Each event is retried on network errors,
// timeouts and 5xx up to maxAttempts in total with a constant pause; a 4xx
// gives up at once. Requests carry Idempotency-Key: event_id so that a
// retry after a lost response cannot create a duplicate.
type backendEmitter struct {
	url         string
	client      *http.Client
	maxAttempts int
	backoff     time.Duration
	log         *slog.Logger

	queue            chan *packet.Map
	ctx              context.Context
	cancel           context.CancelFunc
	done             chan struct{}
	closeOnce        sync.Once
	ok, failed, full atomic.Int64
}

func newBackendEmitter(s eventsSettings, log *slog.Logger) (*backendEmitter, error) {
	u, err := url.Parse(s.PostURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("events.post_url %q is not an http(s) URL with a host", redact.URL(s.PostURL))
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &backendEmitter{
		url:         s.PostURL,
		client:      &http.Client{Timeout: time.Duration(s.TimeoutSec * float64(time.Second))},
		maxAttempts: int(max(1, s.RetryMaxAttempts)),
		backoff:     time.Duration(s.RetryBackoffSec * float64(time.Second)),
		log:         log,
		queue:       make(chan *packet.Map, 256),
		ctx:         ctx, cancel: cancel,
		done: make(chan struct{}),
	}
	go e.worker()
	return e, nil
}

func (e *backendEmitter) Emit(_ context.Context, ev *packet.Map) bool {
	select {
	case e.queue <- ev:
		return true
	default:
		e.full.Add(1)
		id, _ := ev.Get("event_id")
		e.log.Warn("backend send queue full, dropping event", "error_code", "BACKEND_QUEUE_FULL", "event_id", id)
		return false
	}
}

func (e *backendEmitter) worker() {
	defer close(e.done)
	for ev := range e.queue {
		if e.post(ev) {
			e.ok.Add(1)
		} else {
			e.failed.Add(1)
		}
	}
}

func (e *backendEmitter) post(ev *packet.Map) bool {
	body := packet.AppendJSON(nil, ev, packet.Spaced)
	id, _ := ev.Get("event_id")
	idStr, _ := id.(string)
	for attempt := 1; attempt <= e.maxAttempts; attempt++ {
		req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.url, bytes.NewReader(body))
		if err != nil {
			e.log.Error("backend post failed", "error_code", "BACKEND_POST_GIVEUP", "error", err)
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		if idStr != "" {
			req.Header.Set("Idempotency-Key", idStr)
		}
		resp, err := e.client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return true
			case resp.StatusCode/100 == 4:
				e.log.Error("backend returned 4xx, dropping", "error_code", "BACKEND_NON_2XX", "status", resp.StatusCode,
					"body", string(msg), "event_id", idStr)
				return false
			}
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
		}
		if e.ctx.Err() != nil {
			return false
		}
		e.log.Warn("backend post failed", "error_code", "BACKEND_POST_FAILED", "attempt", attempt,
			"max_attempts", e.maxAttempts, "error", err, "event_id", idStr)
		if attempt < e.maxAttempts {
			select {
			case <-time.After(e.backoff):
			case <-e.ctx.Done():
				return false
			}
		}
	}
	e.log.Error("backend post failed after retries", "error_code", "BACKEND_POST_GIVEUP", "event_id", idStr)
	return false
}

// Close lets the worker deliver what is queued until ctx ends, then
// abandons the rest (counted as failed).
func (e *backendEmitter) Close(ctx context.Context) error {
	e.closeOnce.Do(func() { close(e.queue) })
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		e.cancel()
		<-e.done
		return fmt.Errorf("backend emitter: %d events not delivered before the shutdown deadline", len(e.queue))
	}
}
