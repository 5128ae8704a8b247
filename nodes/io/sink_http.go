package ionodes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// HTTPConfig is HttpJsonSink's config: upstream's keys, names and defaults.
type HTTPConfig struct {
	URL                string            `yaml:"url" required:"true" doc:"Endpoint (http or https). A user:password@ part is sent as basic auth and masked (user:***@) in logs, errors and meta.http."`
	Method             string            `yaml:"method" doc:"HTTP method, upper-cased; empty means POST."`
	TimeoutSec         float64           `yaml:"timeout_sec" doc:"Seconds one attempt may take in total (connect, send, response headers); must be > 0."`
	Body               string            `yaml:"body" doc:"payload: send the packet's payload as JSON; packet: send {packet_id, ts, kind, source_id, payload, meta}."`
	Headers            map[string]string `yaml:"headers" doc:"Extra request headers; they may override Content-Type, and are overridden by the idempotency header."`
	IdempotencyHeader  string            `yaml:"idempotency_header" doc:"Header carrying meta.idempotency_key, or packet_id when that is empty; the same value on every retry and replay. Empty disables it."`
	RetryMaxAttempts   int               `yaml:"retry_max_attempts" doc:"Attempts per packet, the first included; must be >= 1."`
	RetryBackoffSec    float64           `yaml:"retry_backoff_sec" doc:"Wait before the first retry, doubled per retry (negative counts as 0 = no wait). Each wait is drawn uniformly from [w/2, w] (jitter)."`
	RetryBackoffMaxSec float64           `yaml:"retry_backoff_max_sec" doc:"Cap of the doubled wait (raised to retry_backoff_sec if lower); also caps a server's Retry-After."`
	RetryOnStatus      []int             `yaml:"retry_on_status" doc:"Response statuses that are retried; other non-2xx statuses give up at once. Connection errors and timeouts are always retried."`
	Forward            bool              `yaml:"forward" doc:"After a 2xx, emit the packet with meta.http = {url, method, node_id}, so that an ack sink after this node acknowledges only delivered packets."`
	RaiseOnFail        bool              `yaml:"raise_on_fail" doc:"When retries are exhausted, end the run with an error. Otherwise the packet fails alone: it is counted (failed_total), nacked to its source (a durable queue retries it later) and the run is reported degraded."`
}

// Validate applies upstream's normalisation (trim, upper-case method,
// floors) and rejects what upstream would fail on later, per packet.
func (c *HTTPConfig) Validate() error {
	c.URL = strings.TrimSpace(c.URL)
	if c.URL == "" {
		return plugin.Errorf("url", "must not be empty")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return plugin.Errorf("url", "not a URL: %s", maskURL(c.URL))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return plugin.Errorf("url", "scheme must be http or https, got %q in %s", u.Scheme, maskURL(c.URL))
	}
	if u.Host == "" {
		return plugin.Errorf("url", "no host in %s", maskURL(c.URL))
	}
	c.Method = strings.ToUpper(strings.TrimSpace(c.Method))
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if !isToken(c.Method) {
		return plugin.Errorf("method", "not an HTTP method: %q", c.Method)
	}
	if !(c.TimeoutSec > 0) {
		return plugin.Errorf("timeout_sec", "must be > 0, got %v", c.TimeoutSec)
	}
	c.Body = strings.ToLower(strings.TrimSpace(c.Body))
	if c.Body == "" {
		c.Body = "payload"
	}
	if c.Body != "payload" && c.Body != "packet" {
		return plugin.Errorf("body", "must be 'payload' or 'packet', got %q", c.Body)
	}
	for k, v := range c.Headers {
		if !isToken(k) {
			return plugin.Errorf("headers."+k, "not a valid header name")
		}
		if !validHeaderValue(v) {
			return plugin.Errorf("headers."+k, "header value contains a control character")
		}
	}
	c.IdempotencyHeader = strings.TrimSpace(c.IdempotencyHeader)
	if c.IdempotencyHeader != "" && !isToken(c.IdempotencyHeader) {
		return plugin.Errorf("idempotency_header", "not a valid header name: %q", c.IdempotencyHeader)
	}
	if c.RetryMaxAttempts < 1 {
		return plugin.Errorf("retry_max_attempts", "must be >= 1, got %d", c.RetryMaxAttempts)
	}
	c.RetryBackoffSec = max(0, c.RetryBackoffSec)
	c.RetryBackoffMaxSec = max(c.RetryBackoffSec, c.RetryBackoffMaxSec)
	for i, s := range c.RetryOnStatus {
		if s < 100 || s > 999 {
			return plugin.Errorf(fmt.Sprintf("retry_on_status[%d]", i), "not an HTTP status: %d", s)
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (header names, methods).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderValue rejects the control characters Go's transport refuses
// to send (a refused request would otherwise be retried pointlessly).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func registerHTTP(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[HTTPConfig]{
		Name: modHTTP + "HttpJsonSink",
		Role: plugin.RoleSink,
		// upstream REQUIRES_PORTABLE_PAYLOAD: frames cannot be written or stored
		InProfile: plugin.ProfileJSON, OutProfile: plugin.ProfileJSON,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "POST each packet as JSON, with retries, backoff with jitter and an idempotency header.",
		Description: "Acts per packet. The body is json.dumps(..., ensure_ascii=False) of the payload or of the packet " +
			"envelope, as upstream. A 2xx is success; a status in retry_on_status, a connection error or a timeout is " +
			"retried up to retry_max_attempts with exponential backoff (retry_backoff_sec doubling up to " +
			"retry_backoff_max_sec, each wait jittered into its upper half; a Retry-After is honoured up to the cap); " +
			"any other status gives up at once. Redirects are not followed. One HTTP client with keep-alive " +
			"connections serves every packet.\n\n" +
			"Store-and-forward: run this node as `kind: node` with `forward: true` in front of SqliteQueueAckSink; " +
			"only packets the server accepted are forwarded, hence acked. A packet given up on is nacked to the " +
			"queue (unless raise_on_fail ends the run) and counted in failed_total, which makes the run degraded. " +
			"The idempotency header lets the server deduplicate replays.",
		Defaults: HTTPConfig{
			Method: "POST", TimeoutSec: 3, Body: "payload", IdempotencyHeader: "Idempotency-Key",
			RetryMaxAttempts: 3, RetryBackoffSec: 1, RetryBackoffMaxSec: 10,
			RetryOnStatus: []int{408, 409, 425, 429, 500, 502, 503, 504},
		},
		New: newHTTPSink,
	})
}

type httpSink struct {
	cfg        HTTPConfig
	env        plugin.Env
	masked     string // the URL with its password masked
	retryOn    map[int]bool
	bodyPacket bool
	headers    http.Header // Content-Type and the user's headers, canonical
	host       string      // a Host header from config, which Go sends only via Request.Host
	timeout    time.Duration
	backoff    time.Duration
	backoffMax time.Duration

	mu        sync.Mutex // guards client and transport across Start/Close
	client    *http.Client
	transport *http.Transport

	posted, failed, retries atomic.Int64

	// stop is closed when a graceful stop begins: no more retries or
	// waits, so a forwarder facing a dead endpoint stops within seconds and
	// its packets go back to the queue (nack) instead of being retried.
	stop     chan struct{}
	stopOnce sync.Once
}

// Stopping implements plugin.Stopper.
func (s *httpSink) Stopping() { s.stopOnce.Do(func() { close(s.stop) }) }

func (s *httpSink) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func newHTTPSink(c HTTPConfig, env plugin.Env) (any, error) {
	s := &httpSink{
		cfg: c, env: env, masked: maskURL(c.URL), retryOn: map[int]bool{},
		bodyPacket: c.Body == "packet",
		headers:    http.Header{},
		stop:       make(chan struct{}),
		timeout:    time.Duration(c.TimeoutSec * float64(time.Second)),
		backoff:    time.Duration(c.RetryBackoffSec * float64(time.Second)),
		backoffMax: time.Duration(c.RetryBackoffMaxSec * float64(time.Second)),
	}
	for _, st := range c.RetryOnStatus {
		s.retryOn[st] = true
	}
	s.headers.Set("Content-Type", "application/json")
	for k, v := range c.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			s.host = v
			continue
		}
		s.headers.Set(k, v)
	}
	return s, nil
}

// Start builds the one client every packet shares. Its transport keeps
// connections alive between packets and retries, so a steady stream costs
// one TCP (and TLS) handshake, not one per packet.
func (s *httpSink) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return nil
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 4
	s.transport = t
	s.client = &http.Client{
		Transport: t,
		// A redirect would turn the POST into a GET and report success
		// for data nobody stored: treat 3xx as the failure it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// Close drops the idle connections. Safe to call twice.
func (s *httpSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
		s.transport, s.client = nil, nil
	}
	return nil
}

// idempotencyKey is upstream's str(meta.get("idempotency_key") or
// packet_id): Python truthiness, then str(). Both parts are persisted by
// the durable queue, so a replayed packet carries the same key.
func idempotencyKey(p *packet.Packet) string {
	if v, ok := p.Meta.Get("idempotency_key"); ok && packet.Truthy(v) {
		return packet.PyStr(v)
	}
	return p.ID
}

// Process delivers one packet; see the spec's Description for the outcomes.
func (s *httpSink) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	// A fresh buffer per packet: the transport may still read a request
	// body after Do returns (net/http RoundTripper contract), so reusing
	// it for the next packet would race.
	body, err := appendRecord(nil, p, s.bodyPacket, jsonStyle{ascii: false, indent: -1})
	if err != nil {
		// Upstream raises TypeError here, ending the run; a queue could
		// never deliver such a packet either.
		return fmt.Errorf("request body: %w", err)
	}
	key := ""
	if s.cfg.IdempotencyHeader != "" {
		key = idempotencyKey(p)
	}
	err = s.deliver(ctx, body, key)
	if err != nil {
		if errors.Is(err, errNotStarted) {
			return err // a runtime bug, not a delivery failure
		}
		if errors.Is(err, errStopping) {
			// Graceful stop during an outage: not a give-up either; the
			// packet is nacked back to its queue for the next run.
			return plugin.DropPacket(fmt.Errorf("delivery to %s: %w", s.masked, err))
		}
		if ctx.Err() != nil {
			// Hard stop mid-delivery: not a give-up. The runtime nacks the
			// packet, so a durable source offers it again next run.
			return plugin.DropPacket(fmt.Errorf("delivery to %s interrupted: %w", s.masked, ctx.Err()))
		}
		s.failed.Add(1)
		err = fmt.Errorf("http delivery failed: %s: %w", s.masked, err)
		if s.cfg.RaiseOnFail {
			return err
		}
		// The runtime calls p.Nack with this error (once), counts the
		// packet as failed (the run reports degraded) and logs it.
		return plugin.DropPacket(err)
	}
	s.posted.Add(1)
	if !s.cfg.Forward {
		return nil
	}
	q := p.Copy()
	q.Meta = p.Meta.Clone(1)
	q.Meta.Set("http", packet.MapOf("url", s.masked, "method", s.cfg.Method, "node_id", s.env.NodeID))
	return out.Emit(q)
}

var (
	errNotStarted = errors.New("http sink used before Start or after Close")
	errStopping   = errors.New("stopping")
)

// deliver runs the attempt loop; nil means a 2xx was received.
func (s *httpSink) deliver(ctx context.Context, body []byte, key string) error {
	if key != "" && !validHeaderValue(key) {
		return fmt.Errorf("idempotency key %q contains a control character", key)
	}
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	if client == nil {
		return errNotStarted
	}
	var last error
	for attempt := 1; ; attempt++ {
		status, wait, err := s.attempt(ctx, client, body, key)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			last = err // connection errors and timeouts are always retried
		case status >= 200 && status < 300:
			return nil
		case !s.retryOn[status]:
			return fmt.Errorf("status %d (not in retry_on_status)", status)
		default:
			last = fmt.Errorf("status %d", status)
		}
		if attempt >= s.cfg.RetryMaxAttempts {
			return fmt.Errorf("%d attempts, last: %w", attempt, last)
		}
		if s.stopping() {
			return fmt.Errorf("%w after %d attempt(s), not retried: %w", errStopping, attempt, last)
		}
		s.retries.Add(1)
		d := backoffWait(attempt, s.backoff, s.backoffMax, rand.Float64())
		if wait > d && s.backoff > 0 {
			d = min(wait, s.backoffMax)
		}
		if !sleepCtx(ctx, s.stop, d) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w after %d attempt(s), not retried: %w", errStopping, attempt, last)
		}
	}
}

// maxDrain is how much of a response body is read so its connection can be
// reused; a longer body costs a new connection rather than the time to read it.
const maxDrain = 64 << 10

// attempt sends one request; it returns the status and any Retry-After.
func (s *httpSink) attempt(ctx context.Context, client *http.Client, body []byte, key string) (int, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, s.cfg.Method, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	for k, v := range s.headers {
		req.Header[k] = v
	}
	if s.host != "" {
		req.Host = s.host
	}
	if key != "" {
		req.Header.Set(s.cfg.IdempotencyHeader, key)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the URL; ours is masked
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("timeout after %v", s.timeout)
		}
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	return resp.StatusCode, retryAfter(resp.Header, time.Now()), nil
}

// Metrics reports upstream's extension counters.
func (s *httpSink) Metrics() []plugin.Metric {
	return []plugin.Metric{
		{Name: "posted_total", Value: s.posted.Load()},
		{Name: "failed_total", Value: s.failed.Load(), Loss: true},
		{Name: "retry_total", Value: s.retries.Load()},
	}
}

var (
	_ plugin.Processor = (*httpSink)(nil)
	_ plugin.Starter   = (*httpSink)(nil)
	_ plugin.Closer    = (*httpSink)(nil)
	_ plugin.Metrics   = (*httpSink)(nil)
)

var _ plugin.Stopper = (*httpSink)(nil)
