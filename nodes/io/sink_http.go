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
	"time"
	"unicode/utf8"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// HTTPConfig is HttpJsonSink's config: upstream's keys, names and defaults,
// plus ours for concurrency, batching and the bounded stop.
type HTTPConfig struct {
	URL                string            `yaml:"url" required:"true" secret:"true" example:"http://127.0.0.1:8080/api/events" doc:"Endpoint (http or https). A user:password@ part is sent as basic auth and masked (***:***@, with secret-looking query values) in logs, errors and meta.http."`
	Method             string            `yaml:"method" doc:"HTTP method, upper-cased; empty means POST."`
	TimeoutSec         plugin.Seconds    `yaml:"timeout_sec" doc:"Seconds one attempt may take in total (connect, send, response headers); 0 < timeout_sec <= 3600."`
	Body               string            `yaml:"body" doc:"payload: send the packet's payload as JSON; packet: send {packet_id, ts, kind, source_id, payload, meta}."`
	Headers            map[string]string `yaml:"headers" secret:"true" doc:"Extra request headers; they may override Content-Type, and are overridden by the idempotency header."`
	IdempotencyHeader  string            `yaml:"idempotency_header" advanced:"true" doc:"Header carrying meta.idempotency_key, or packet_id when that is empty; the same value on every retry and replay. Empty disables it. Batch requests use idempotency_keys_header instead."`
	RetryMaxAttempts   int               `yaml:"retry_max_attempts" doc:"Attempts per request, the first included; 1 to 1000."`
	RetryBackoffSec    plugin.Seconds    `yaml:"retry_backoff_sec" advanced:"true" doc:"Wait before the first retry, doubled per retry; 0 = no wait; at most 3600. Each wait is drawn uniformly from [w/2, w] (jitter)."`
	RetryBackoffMaxSec plugin.Seconds    `yaml:"retry_backoff_max_sec" advanced:"true" doc:"Cap of the doubled wait (raised to retry_backoff_sec if lower; at most 3600); also caps a server's Retry-After."`
	RetryOnStatus      []int             `yaml:"retry_on_status" doc:"Statuses retried in addition to 408, 429 and every 5xx (which always are), e.g. 409 or a 404 during deployments; a listed 4xx is never dead-lettered as permanent."`
	Forward            bool              `yaml:"forward" doc:"After a 2xx, emit the packet with meta.http = {url, method, node_id}, so that an ack sink after this node acknowledges only delivered packets. Each packet is emitted as soon as its own request succeeded."`
	RaiseOnFail        bool              `yaml:"raise_on_fail" doc:"When a packet is given up on (retries exhausted or a permanent status), end the run with an error. Otherwise the packet fails alone: it is counted (failed_total), nacked to its source and the run is reported degraded."`

	MaxInFlight           int            `yaml:"max_in_flight" doc:"Requests in flight at once (1 to 4096), each on its own keep-alive connection. 1 keeps strict order; more lets a later packet be delivered (and acked) before an earlier one that is slow or being retried."`
	BatchMaxCount         int            `yaml:"batch_max_count" doc:"Packets per request (1 to 10000). 1 sends each packet alone with upstream's body; more sends batch_format bodies."`
	BatchMaxBytes         int            `yaml:"batch_max_bytes" doc:"Body bytes per batch request (1 to 64 MiB); a packet larger than this is sent alone."`
	BatchPeriodSec        plugin.Seconds `yaml:"batch_period_sec" doc:"How long a partial batch waits for more packets (0 to 3600). 0: a batch is sent as soon as no more input is at hand."`
	BatchFormat           string         `yaml:"batch_format" enum:"json_array,ndjson" doc:"Body of a batch request (batch_max_count > 1): json_array = [record, ...] (Content-Type application/json), ndjson = one record per line (application/x-ndjson). A record is what body selects."`
	IdempotencyKeysHeader string         `yaml:"idempotency_keys_header" doc:"For batch requests: header carrying the packets' idempotency keys as a JSON array of strings, in body order. Empty disables it."`
	StopTimeoutSec        plugin.Seconds `yaml:"stop_timeout_sec" doc:"On a graceful stop, how long requests in flight may still finish (0 to 3600); then they are cancelled, and the packets neither forwarded nor nacked. No new attempt starts once the stop began."`
}

// Upper bounds of the config: beyond them a value is a typo, not a choice.
const (
	maxInFlightLimit   = 4096
	maxBatchCount      = 10000
	maxBatchBytes      = 64 << 20
	maxDurationSec     = 3600
	maxAttemptsLimit   = 1000
	defaultBatchBytes  = 1 << 20
	defaultMaxInFlight = 64
)

// checkURL checks url alone: the checks after the first failing one
// would only repeat it.
func (c *HTTPConfig) checkURL() error {
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
	return nil
}

// Validate applies upstream's normalisation (trim, upper-case method) and
// rejects what upstream would fail on later, per packet, and values out of
// range: every problem at once.
func (c *HTTPConfig) Validate() error {
	var errs []error // all of them, so one validation shows every problem
	if err := c.checkURL(); err != nil {
		errs = append(errs, err)
	}
	c.Method = strings.ToUpper(strings.TrimSpace(c.Method))
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if !isToken(c.Method) {
		errs = append(errs, plugin.Errorf("method", "not an HTTP method: %q", c.Method))
	}
	if !(c.TimeoutSec > 0) || c.TimeoutSec > maxDurationSec {
		errs = append(errs, plugin.Errorf("timeout_sec", "must be > 0 and <= %d, got %v", maxDurationSec, c.TimeoutSec))
	}
	c.Body = strings.ToLower(strings.TrimSpace(c.Body))
	if c.Body == "" {
		c.Body = "payload"
	}
	if c.Body != "payload" && c.Body != "packet" {
		errs = append(errs, plugin.Errorf("body", "must be 'payload' or 'packet', got %q", c.Body))
	}
	for k, v := range c.Headers {
		if !isToken(k) {
			errs = append(errs, plugin.Errorf("headers."+k, "not a valid header name"))
		}
		if !validHeaderValue(v) {
			errs = append(errs, plugin.Errorf("headers."+k, "header value contains a control character"))
		}
	}
	c.IdempotencyHeader = strings.TrimSpace(c.IdempotencyHeader)
	if c.IdempotencyHeader != "" && !isToken(c.IdempotencyHeader) {
		errs = append(errs, plugin.Errorf("idempotency_header", "not a valid header name: %q", c.IdempotencyHeader))
	}
	c.IdempotencyKeysHeader = strings.TrimSpace(c.IdempotencyKeysHeader)
	if c.IdempotencyKeysHeader != "" && !isToken(c.IdempotencyKeysHeader) {
		errs = append(errs, plugin.Errorf("idempotency_keys_header", "not a valid header name: %q", c.IdempotencyKeysHeader))
	}
	if c.RetryMaxAttempts < 1 || c.RetryMaxAttempts > maxAttemptsLimit {
		errs = append(errs, plugin.Errorf("retry_max_attempts", "must be between 1 and %d, got %d", maxAttemptsLimit, c.RetryMaxAttempts))
	}
	for _, d := range []struct {
		key string
		v   plugin.Seconds
	}{
		{"retry_backoff_sec", c.RetryBackoffSec},
		{"retry_backoff_max_sec", c.RetryBackoffMaxSec},
		{"batch_period_sec", c.BatchPeriodSec},
		{"stop_timeout_sec", c.StopTimeoutSec},
	} {
		if !(d.v >= 0) || d.v > maxDurationSec {
			errs = append(errs, plugin.Errorf(d.key, "must be between 0 and %d seconds, got %v", maxDurationSec, d.v))
		}
	}
	c.RetryBackoffMaxSec = max(c.RetryBackoffSec, c.RetryBackoffMaxSec)
	for i, s := range c.RetryOnStatus {
		if s < 100 || s > 999 {
			errs = append(errs, plugin.Errorf(fmt.Sprintf("retry_on_status[%d]", i), "not an HTTP status: %d", s))
		}
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > maxInFlightLimit {
		errs = append(errs, plugin.Errorf("max_in_flight", "must be between 1 and %d, got %d", maxInFlightLimit, c.MaxInFlight))
	}
	if c.BatchMaxCount < 1 || c.BatchMaxCount > maxBatchCount {
		errs = append(errs, plugin.Errorf("batch_max_count", "must be between 1 and %d, got %d", maxBatchCount, c.BatchMaxCount))
	}
	if c.BatchMaxBytes < 1 || c.BatchMaxBytes > maxBatchBytes {
		errs = append(errs, plugin.Errorf("batch_max_bytes", "must be between 1 and %d (64 MiB), got %d", maxBatchBytes, c.BatchMaxBytes))
	}
	return errors.Join(errs...)
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
		Summary: "POST packets as JSON, concurrently and optionally batched, with retries, backoff with jitter and idempotency keys.",
		Description: "The body is json.dumps(..., ensure_ascii=False) of the payload or of the packet envelope, as upstream " +
			"(batch_max_count 1, the default); with batch_max_count > 1 up to that many records (and batch_max_bytes) go in " +
			"one request as a JSON array or NDJSON, and the packets' idempotency keys in the idempotency_keys_header header " +
			"as a JSON array in body order (the records themselves are unchanged, so a receiver dedups per record).\n\n" +
			"Up to max_in_flight requests run at once over keep-alive connections (as many as max_in_flight). Ordering: " +
			"with max_in_flight 1 packets are delivered strictly in input order; with more, requests overlap, so a packet " +
			"may reach the receiver (and be acked) before an earlier one that is slow or being retried. Each packet is " +
			"forwarded as soon as its own request got a 2xx, not after the rest of its input batch.\n\n" +
			"Statuses: 2xx is delivered (the response body is not read as data: a 200 with any body counts). 408, 429, " +
			"every 5xx, statuses in retry_on_status, connection errors (a receiver closing mid-response too) and " +
			"timeouts are retried up to retry_max_attempts with exponential backoff (retry_backoff_sec doubling up to " +
			"retry_backoff_max_sec, each wait jittered into its upper half; a Retry-After is honoured per request up to " +
			"the cap); when they are exhausted the packets are nacked (a durable queue retries them later). Any other " +
			"4xx is permanent: the packets are nacked at once as permanent failures (`HTTP <status>: <body excerpt>`), " +
			"so a durable queue dead-letters them; a 413 or 431 to a batch of several packets is not permanent (the " +
			"batch was too big, not the packets bad). A 3xx is not followed (a POST turned into a GET stores nothing): " +
			"it is counted in redirect_total and nacked as an ordinary failure naming the Location, not retried here.\n\n" +
			"Store-and-forward: run this node as `kind: node` with `forward: true` in front of SqliteQueueAckSink; only " +
			"packets the server accepted are forwarded, hence acked. Packets given up on are counted in failed_total, " +
			"which makes the run degraded. On a graceful stop (SIGTERM) no new attempt or retry starts: packets not yet " +
			"sent are left (left_on_stop_total; a durable source releases their leases), requests in flight get " +
			"stop_timeout_sec to finish and are then cancelled (interrupted_total); neither kind is nacked, because an " +
			"interrupted attempt is not a failed one; both counters make the run degraded, as the runtime's abandoned packets do. " +
			"The same holds when the runtime cancels the node.",
		Defaults: HTTPConfig{
			Method: "POST", TimeoutSec: 3, Body: "payload", IdempotencyHeader: "Idempotency-Key",
			RetryMaxAttempts: 3, RetryBackoffSec: 1, RetryBackoffMaxSec: 10,
			RetryOnStatus: []int{408, 409, 425, 429, 500, 502, 503, 504},
			MaxInFlight:   defaultMaxInFlight, BatchMaxCount: 1, BatchMaxBytes: defaultBatchBytes,
			BatchFormat: "json_array", IdempotencyKeysHeader: "Idempotency-Keys", StopTimeoutSec: 5,
		},
		Metrics: []plugin.MetricSpec{
			{Name: "posted_total", Help: "Packets the server accepted (2xx)."},
			{Name: "failed_total", Help: "Packets given up on (retries exhausted or a permanent status): nacked.", Loss: true},
			{Name: "retry_total", Help: "Requests retried after a connection error, timeout or retryable status."},
			{Name: "permanent_total", Help: "Packets of failed_total given up at once on a permanent status (4xx but 408/429)."},
			{Name: "requests_total", Help: "HTTP requests sent, retries included."},
			{Name: "redirect_total", Help: "Requests answered with a 3xx redirect (not followed; nacked as a failure)."},
			{Name: "interrupted_total", Help: "Packets whose request a stop cancelled after stop_timeout_sec: neither forwarded nor nacked.", Loss: true},
			{Name: "left_on_stop_total", Help: "Packets a stop left unsent: neither forwarded nor nacked.", Loss: true},
			{Name: "in_flight", Help: "Packets in requests now in flight.", Gauge: true},
		},
		NewBatchProcessor: newHTTPSink,
	})
}

// record is one packet on its way: its encoded body record and key.
type record struct {
	p    *packet.Packet
	out  plugin.Emitter
	body []byte
	key  string
}

// request is what one HTTP request carries: one packet, or a batch.
type request struct {
	recs []record
	body []byte
	keys string // the keys header value of a batch; "" for none
}

type httpSink struct {
	cfg        HTTPConfig
	env        plugin.Env
	masked     string // the URL with its password masked
	retryOn    map[int]bool
	bodyPacket bool
	batched    bool        // batch_max_count > 1: batch bodies and the keys header
	headers    http.Header // Content-Type and the user's headers, canonical
	host       string      // a Host header from config, which Go sends only via Request.Host
	timeout    time.Duration
	backoff    time.Duration
	backoffMax time.Duration
	period     time.Duration
	stopAfter  time.Duration

	mu        sync.Mutex // guards client, transport and the dispatcher's life
	client    *http.Client
	transport *http.Transport
	closed    bool

	// The node goroutine hands records to the dispatcher goroutine, which
	// forms requests and hands each to one of at most max_in_flight
	// workers, waiting while all are busy (backpressure).
	work     chan []record
	flushReq chan chan struct{}
	jobs     chan *request // to the workers; closed when the dispatcher ends
	workers  int           // started so far (dispatcher only)
	dispDone chan struct{}
	quit     chan struct{} // closed by Close: the dispatcher ends

	// active counts requests handed out and not settled; idle is closed
	// when it drops to 0.
	activeMu sync.Mutex
	active   int
	idle     chan struct{}

	// stop is closed when a graceful stop begins: no new attempt starts.
	// cancel ends the attempts in flight: stop_timeout_sec after stop, when
	// a ctx given to ProcessBatch/Flush ends, or on Close.
	stop     chan struct{}
	stopOnce sync.Once
	runCtx   context.Context
	cancel   context.CancelFunc
	watchMu  sync.Mutex
	watched  context.Context
	unwatch  func() bool

	fatalMu sync.Mutex
	fatal   error // a give-up under raise_on_fail: ends the run at the next call

	failLog plugin.RateLog // the first failure, then one line per 10 s during an outage

	// upstream's extension counters and ours. interrupted and left: packets
	// a stop left undelivered; like the runtime's abandoned packets they
	// make the run degraded (a durable source keeps them queued; any other
	// source has lost them).
	*plugin.Counters
	posted, failed, permanent, retries, requests, redirects *plugin.Counter
	interrupted, left, inFlight                             *plugin.Counter
}

func newHTTPSink(c HTTPConfig, env plugin.Env) (plugin.BatchProcessor, error) {
	cs := env.Counters()
	s := &httpSink{
		cfg: c, env: env, masked: maskURL(c.URL), retryOn: map[int]bool{},
		bodyPacket: c.Body == "packet",
		batched:    c.BatchMaxCount > 1,
		headers:    http.Header{},
		stop:       make(chan struct{}),
		timeout:    c.TimeoutSec.Duration(),
		backoff:    c.RetryBackoffSec.Duration(),
		backoffMax: c.RetryBackoffMaxSec.Duration(),
		period:     c.BatchPeriodSec.Duration(),
		stopAfter:  c.StopTimeoutSec.Duration(),

		Counters: cs, posted: cs.Get("posted_total"), failed: cs.Get("failed_total"),
		retries: cs.Get("retry_total"), permanent: cs.Get("permanent_total"),
		requests: cs.Get("requests_total"), redirects: cs.Get("redirect_total"),
		interrupted: cs.Get("interrupted_total"), left: cs.Get("left_on_stop_total"),
		inFlight: cs.Get("in_flight"),
	}
	s.runCtx, s.cancel = context.WithCancel(context.Background())
	for _, st := range c.RetryOnStatus {
		s.retryOn[st] = true
	}
	if s.batched && c.BatchFormat == "ndjson" {
		s.headers.Set("Content-Type", "application/x-ndjson")
	} else {
		s.headers.Set("Content-Type", "application/json")
	}
	for k, v := range c.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			s.host = v
			continue
		}
		s.headers.Set(k, v)
	}
	return s, nil
}

// Start builds the one client every request shares and starts the
// dispatcher. Its transport keeps max_in_flight connections alive, so a
// steady stream costs one TCP (and TLS) handshake per connection, not one
// per packet.
func (s *httpSink) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil || s.closed {
		return nil
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = max(t.MaxIdleConns, s.cfg.MaxInFlight)
	t.MaxIdleConnsPerHost = s.cfg.MaxInFlight
	t.MaxConnsPerHost = s.cfg.MaxInFlight
	s.transport = t
	s.client = &http.Client{
		Transport: t,
		// A redirect would turn the POST into a GET and report success
		// for data nobody stored: treat 3xx as the failure it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.work = make(chan []record)
	s.flushReq = make(chan chan struct{})
	s.jobs = make(chan *request)
	s.dispDone = make(chan struct{})
	s.quit = make(chan struct{})
	go s.dispatch(s.client)
	return nil
}

// Close cancels what is still in flight (normally nothing: Flush waited),
// stops the dispatcher and drops the idle connections. Safe to call twice.
func (s *httpSink) Close(context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	t, done := s.transport, s.dispDone
	s.mu.Unlock()
	s.cancel()
	if done != nil {
		close(s.quit)
		<-done
		<-s.idleChan()
	}
	if t != nil {
		t.CloseIdleConnections()
	}
	return nil
}

// Stopping implements plugin.Stopper: no new attempt from now on, and the
// attempts in flight are cancelled after stop_timeout_sec.
func (s *httpSink) Stopping() {
	s.stopOnce.Do(func() {
		close(s.stop)
		if n := s.inFlight.Load(); n > 0 {
			s.env.Logger.Info("stopping: no new attempts; requests in flight may finish", "packets_in_flight", n, "stop_timeout_sec", s.cfg.StopTimeoutSec)
		}
		time.AfterFunc(s.stopAfter, func() {
			if n := s.inFlight.Load(); n > 0 && s.runCtx.Err() == nil {
				s.env.Logger.Warn("stop timeout: cancelling requests in flight (their packets stay queued, not nacked)", "packets_in_flight", n)
			}
			s.cancel()
		})
	})
}

func (s *httpSink) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// watch makes the cancellation of ctx (the runtime's node context)
// cancel the attempts in flight, which outlive the call they came from.
func (s *httpSink) watch(ctx context.Context) {
	if ctx.Done() == nil {
		return
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watched == ctx {
		return
	}
	if s.unwatch != nil {
		s.unwatch()
	}
	s.watched, s.unwatch = ctx, context.AfterFunc(ctx, s.cancel)
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

var errNotStarted = errors.New("http sink used before Start or after Close")

// ProcessBatch encodes the packets and hands them to the dispatcher; it
// returns as soon as the dispatcher took them (blocking while max_in_flight
// requests are in flight), not when they are delivered: each is forwarded
// when its own request succeeds (see Flush).
func (s *httpSink) ProcessBatch(ctx context.Context, batch []*packet.Packet, out plugin.Emitter) error {
	if err := s.fatalErr(); err != nil {
		s.finish(ctx)
		return err
	}
	s.mu.Lock()
	ready := s.client != nil && !s.closed
	s.mu.Unlock()
	if !ready {
		return errNotStarted // a runtime bug, not a delivery failure
	}
	s.watch(ctx)
	recs := make([]record, 0, len(batch))
	var bodyErr error
	for i, p := range batch {
		if s.stopping() || s.runCtx.Err() != nil {
			// Not tried: neither forwarded nor nacked; a durable source
			// releases the lease when it closes.
			s.left.Add(int64(len(batch) - i))
			break
		}
		// A fresh buffer per packet: the transport may still read a
		// request body after Do returns (net/http RoundTripper contract).
		body, err := appendRecord(nil, p, s.bodyPacket, packet.JSONOptions{})
		if err != nil {
			// Upstream raises TypeError here, ending the run; a queue
			// could never deliver such a packet either.
			bodyErr = fmt.Errorf("request body: %w", err)
			break
		}
		r := record{p: p, out: out, body: body}
		if s.wantKeys() {
			r.key = idempotencyKey(p)
			if !s.batched && !validHeaderValue(r.key) {
				s.giveUp([]record{r}, packet.Permanent(fmt.Errorf("idempotency key %q contains a control character", r.key)))
				continue
			}
		}
		recs = append(recs, r)
	}
	if len(recs) > 0 {
		select {
		case s.work <- recs:
		case <-s.stop:
			s.left.Add(int64(len(recs)))
		case <-s.runCtx.Done():
			s.left.Add(int64(len(recs)))
		}
	}
	if bodyErr != nil {
		s.finish(ctx)
		return bodyErr
	}
	return nil
}

func (s *httpSink) wantKeys() bool {
	if s.batched {
		return s.cfg.IdempotencyKeysHeader != ""
	}
	return s.cfg.IdempotencyHeader != ""
}

// Flush implements plugin.Flusher: at the end of the input it sends the
// partial batch and waits until every request has finished (delivered and
// forwarded, given up and nacked, or interrupted by a stop).
func (s *httpSink) Flush(ctx context.Context, _ plugin.Emitter) error {
	s.finish(ctx)
	return s.fatalErr()
}

// finish sends the partial batch and waits for every request goroutine,
// cancelling them when ctx ends.
func (s *httpSink) finish(ctx context.Context) {
	s.mu.Lock()
	ready := s.client != nil && !s.closed
	s.mu.Unlock()
	if !ready {
		return
	}
	s.watch(ctx)
	reply := make(chan struct{})
	select {
	case s.flushReq <- reply:
		<-reply // bounded: waiting for a worker ends on stop or cancel
	case <-s.runCtx.Done():
	}
	select {
	case <-s.idleChan():
	case <-ctx.Done():
		s.cancel()
		<-s.idleChan() // cancelled attempts return at once
	}
}

// idleChan returns a channel closed when no request goroutine runs.
func (s *httpSink) idleChan() <-chan struct{} {
	s.activeMu.Lock()
	defer s.activeMu.Unlock()
	if s.active == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.idle
}

func (s *httpSink) begin() {
	s.activeMu.Lock()
	if s.active == 0 {
		s.idle = make(chan struct{})
	}
	s.active++
	s.activeMu.Unlock()
}

func (s *httpSink) end() {
	s.activeMu.Lock()
	s.active--
	if s.active == 0 {
		close(s.idle)
	}
	s.activeMu.Unlock()
}

// dispatch owns the partial batch: it cuts requests from the records it
// is given, in order, and starts each when a worker is free.
func (s *httpSink) dispatch(client *http.Client) {
	defer close(s.dispDone)
	defer close(s.jobs)
	var (
		acc    []record
		size   int
		timer  *time.Timer
		timerC <-chan time.Time
	)
	send := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		if len(acc) == 0 {
			return
		}
		recs := acc
		acc, size = nil, 0
		s.start(client, recs)
	}
	for {
		select {
		case <-s.quit:
			s.left.Add(int64(len(acc)))
			return
		case recs := <-s.work:
			for _, r := range recs {
				if len(acc) > 0 && size+len(r.body)+2 > s.cfg.BatchMaxBytes {
					send()
				}
				acc = append(acc, r)
				size += len(r.body) + 2 // the separator
				if len(acc) >= s.cfg.BatchMaxCount {
					send()
				}
			}
			if len(acc) > 0 {
				if s.period <= 0 {
					send()
				} else if timer == nil {
					timer = time.NewTimer(s.period)
					timerC = timer.C
				}
			}
		case <-timerC:
			timer, timerC = nil, nil
			send()
		case reply := <-s.flushReq:
			send()
			close(reply)
		}
	}
}

// start hands the request for recs to an idle worker, starting one while
// fewer than max_in_flight run, else waiting for one; after a stop or
// cancel it leaves them instead. Workers live as long as the sink, so a
// request does not pay for a new goroutine growing its stack.
func (s *httpSink) start(client *http.Client, recs []record) {
	if s.stopping() || s.runCtx.Err() != nil {
		s.left.Add(int64(len(recs)))
		return
	}
	req := s.build(recs)
	s.begin()
	select {
	case s.jobs <- req:
		return
	default:
	}
	if s.workers < s.cfg.MaxInFlight {
		s.workers++
		go s.worker(client)
	}
	select {
	case s.jobs <- req:
	case <-s.stop:
		s.left.Add(int64(len(recs)))
		s.end()
	case <-s.runCtx.Done():
		s.left.Add(int64(len(recs)))
		s.end()
	}
}

// worker runs requests until the dispatcher ends. A panic (a bug) ends
// the run through the next call instead of the process, as a panic in
// Process would.
func (s *httpSink) worker(client *http.Client) {
	for req := range s.jobs {
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.setFatal(fmt.Errorf("panic in http request: %v", r))
				}
			}()
			s.run(client, req)
		}()
	}
}

// build lays out the body: one record as is (upstream), or a batch.
func (s *httpSink) build(recs []record) *request {
	req := &request{recs: recs}
	if !s.batched {
		req.body = recs[0].body
		return req
	}
	n := 2
	for _, r := range recs {
		n += len(r.body) + 2
	}
	b := make([]byte, 0, n)
	ndjson := s.cfg.BatchFormat == "ndjson"
	if !ndjson {
		b = append(b, '[')
	}
	for i, r := range recs {
		if i > 0 && !ndjson {
			b = append(b, ", "...) // json.dumps's list separator
		}
		b = append(b, r.body...)
		if ndjson {
			b = append(b, '\n')
		}
	}
	if !ndjson {
		b = append(b, ']')
	}
	req.body = b
	if s.cfg.IdempotencyKeysHeader != "" {
		k := make([]byte, 0, 16*len(recs))
		k = append(k, '[')
		for i, r := range recs {
			if i > 0 {
				k = append(k, ',')
			}
			k = packet.AppendString(k, r.key) // ASCII JSON: a valid header value
		}
		req.keys = string(append(k, ']'))
	}
	return req
}

// outcome of a request.
type outcome int

const (
	delivered   outcome = iota
	gaveUp              // retries exhausted or not retryable: nack (permanent or not)
	interrupted         // a stop or cancel cut it short: neither forward nor nack
)

// run delivers one request and settles its packets.
func (s *httpSink) run(client *http.Client, req *request) {
	defer s.end()
	if s.stopping() || s.runCtx.Err() != nil {
		s.left.Add(int64(len(req.recs))) // not tried
		return
	}
	s.inFlight.Add(int64(len(req.recs)))
	defer s.inFlight.Add(-int64(len(req.recs)))
	o, err := s.deliver(client, req)
	switch o {
	case delivered:
		s.posted.Add(int64(len(req.recs)))
		if !s.cfg.Forward {
			return
		}
		for _, r := range req.recs {
			q := r.p.Copy()
			q.Meta = r.p.Meta.Clone(1)
			q.Meta.Set("http", packet.MapOf("url", s.masked, "method", s.cfg.Method, "node_id", s.env.NodeID))
			if err := r.out.Emit(q); err != nil && !errors.Is(err, plugin.ErrStop) {
				s.setFatal(fmt.Errorf("forward: %w", err))
				return
			}
		}
	case interrupted:
		s.interrupted.Add(int64(len(req.recs)))
	case gaveUp:
		s.giveUp(req.recs, err)
	}
}

// giveUp counts, logs and nacks packets whose delivery failed; under
// raise_on_fail it ends the run instead (the packets are still nacked).
func (s *httpSink) giveUp(recs []record, err error) {
	n := int64(len(recs))
	s.failed.Add(n)
	if packet.IsPermanent(err) {
		s.permanent.Add(n)
	}
	s.logFailure(err, n)
	for _, r := range recs {
		if r.p.Nack != nil {
			r.p.Nack(err)
		}
	}
	if s.cfg.RaiseOnFail {
		s.setFatal(fmt.Errorf("http delivery failed: %s: %w", s.masked, err))
	}
}

func (s *httpSink) setFatal(err error) {
	s.fatalMu.Lock()
	if s.fatal == nil {
		s.fatal = err
	}
	s.fatalMu.Unlock()
	// Like a stop: nothing new starts; what is in flight may finish.
	s.Stopping()
}

func (s *httpSink) fatalErr() error {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	return s.fatal
}

func (s *httpSink) logFailure(err error, n int64) {
	s.failLog.WarnN(s.env.Logger, n, "http delivery failed, packets nacked",
		"url", s.masked, "packets", n, "permanent", packet.IsPermanent(err), "err", err)
}

// deliver runs the attempt loop of one request.
func (s *httpSink) deliver(client *http.Client, req *request) (outcome, error) {
	ctx := s.runCtx
	var last error
	for attempt := 1; ; attempt++ {
		if attempt > 1 && s.stopping() {
			return interrupted, nil
		}
		res := s.attempt(ctx, client, req)
		if res.err == nil && res.status >= 200 && res.status < 300 {
			return delivered, nil // even if a cancel came just after
		}
		if ctx.Err() != nil {
			return interrupted, nil
		}
		switch {
		case res.err != nil:
			last = res.err // connection errors and timeouts
		case res.status >= 300 && res.status < 400:
			s.redirects.Add(1)
			loc := res.location
			if loc == "" {
				loc = "(no Location)"
			}
			return gaveUp, fmt.Errorf("HTTP %d: redirect to %s not followed (set url to the final address)", res.status, maskURL(loc))
		case res.status == 408 || res.status == 429 || res.status >= 500 && res.status < 600 || s.retryOn[res.status]:
			last = fmt.Errorf("HTTP %d: %s", res.status, res.excerpt)
		case (res.status == 413 || res.status == 431) && len(req.recs) > 1:
			// The batch was too big, not its packets bad.
			return gaveUp, fmt.Errorf("HTTP %d for a batch of %d packets (%d body bytes): lower batch_max_count or batch_max_bytes: %s",
				res.status, len(req.recs), len(req.body), res.excerpt)
		case res.status >= 400 && res.status < 500:
			return gaveUp, packet.Permanent(fmt.Errorf("HTTP %d: %s", res.status, res.excerpt))
		default:
			return gaveUp, fmt.Errorf("unexpected HTTP status %d: %s", res.status, res.excerpt)
		}
		if attempt >= s.cfg.RetryMaxAttempts {
			return gaveUp, fmt.Errorf("%d attempts, last: %w", attempt, last)
		}
		if s.stopping() {
			return interrupted, nil
		}
		s.retries.Add(1)
		d := backoffWait(attempt, s.backoff, s.backoffMax, rand.Float64())
		if res.wait > d && s.backoff > 0 {
			d = min(res.wait, s.backoffMax)
		}
		if !sleepCtx(ctx, s.stop, d) {
			return interrupted, nil
		}
	}
}

// maxDrain is how much of a response body is read so its connection can be
// reused; a longer body costs a new connection rather than the time to read it.
const maxDrain = 64 << 10

// excerptLen is how much of a failed response's body goes into the error.
const excerptLen = 200

type result struct {
	status   int
	wait     time.Duration // Retry-After
	excerpt  string        // start of the body of a non-2xx
	location string
	err      error
}

// attempt sends one request. A response cut short while its body is read
// (the receiver closed mid-response) is a connection error.
func (s *httpSink) attempt(ctx context.Context, client *http.Client, r *request) result {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, s.cfg.Method, s.cfg.URL, bytes.NewReader(r.body))
	if err != nil {
		return result{err: fmt.Errorf("build request: %w", err)}
	}
	for k, v := range s.headers {
		req.Header[k] = v
	}
	if s.host != "" {
		req.Host = s.host
	}
	if s.batched {
		if r.keys != "" {
			req.Header.Set(s.cfg.IdempotencyKeysHeader, r.keys)
		}
	} else if r.recs[0].key != "" {
		req.Header.Set(s.cfg.IdempotencyHeader, r.recs[0].key)
	}
	s.requests.Add(1)
	resp, err := client.Do(req)
	if err != nil {
		return result{err: s.connError(ctx, err)}
	}
	defer resp.Body.Close()
	res := result{status: resp.StatusCode, wait: retryAfter(resp.Header, time.Now()), location: resp.Header.Get("Location")}
	// Drain (a bounded part of) the body so the connection is reused; a
	// body cut short is an error, unlike one longer than we care to read.
	var body []byte
	if res.status >= 200 && res.status < 300 {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain)) // pooled buffer: no allocation
	} else {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxDrain))
	}
	if err != nil {
		return result{err: fmt.Errorf("HTTP %d, then reading the response: %w", resp.StatusCode, s.connError(ctx, err))}
	}
	if body != nil || res.status < 200 || res.status >= 300 {
		res.excerpt = excerpt(body)
	}
	return res
}

// connError strips the url.Error wrapper (it repeats the URL; ours is
// masked) and names a timeout.
func (s *httpSink) connError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("timeout after %v", s.timeout)
	}
	return err
}

// excerpt makes the start of a response body safe to log and store:
// valid UTF-8, control characters as spaces, whitespace collapsed.
func excerpt(b []byte) string {
	truncated := len(b) > excerptLen
	if truncated {
		b = b[:excerptLen]
		for len(b) > 0 && !utf8.Valid(b) && len(b) > excerptLen-utf8.UTFMax {
			b = b[:len(b)-1] // do not cut a character in two
		}
	}
	s := strings.ToValidUTF8(string(b), "?")
	var sb strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' {
			if !space && sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		sb.WriteRune(r)
	}
	out := strings.TrimSpace(sb.String())
	if out == "" {
		return "(empty body)"
	}
	if truncated {
		out += "..."
	}
	return out
}

var (
	_ plugin.BatchProcessor = (*httpSink)(nil)
	_ plugin.Flusher        = (*httpSink)(nil)
	_ plugin.Starter        = (*httpSink)(nil)
	_ plugin.Closer         = (*httpSink)(nil)
	_ plugin.Metrics        = (*httpSink)(nil)
	_ plugin.Stopper        = (*httpSink)(nil)
)
