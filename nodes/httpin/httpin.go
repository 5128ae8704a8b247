// Package httpin holds HttpServerSource: an HTTP endpoint that turns POSTed
// JSON or NDJSON into packets (webhooks, devices that push). It answers a
// request only once its packets are downstream (200) or, in front of a
// durable queue, committed there (202), so a client that got a 2xx may
// forget what it sent. When the graph cannot keep up it answers 429 with
// Retry-After instead of buffering without bound.
package httpin

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/schnitzel-stream/schnitzel/internal/netaddr"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const mod = "schnitzel_stream.nodes.http:"

// Name is the plugin string graphs use.
const Name = mod + "HttpServerSource"

// Ack modes.
const (
	AckAuto        = "auto"
	AckAfterCommit = "after_commit"
	AckOnAccept    = "on_accept"
)

// Formats.
const (
	FormatAuto   = "auto"
	FormatJSON   = "json"
	FormatNDJSON = "ndjson"
)

// DefaultListen is loopback only: reaching it from the network is a choice
// (TLS and credentials, see Validate).
const DefaultListen = "127.0.0.1:8088"

// Config is HttpServerSource's config.
type Config struct {
	Listen         string         `yaml:"listen" doc:"HOST:PORT to listen on; port 0 picks a free one (logged as addr). A non-loopback host needs TLS and a token or hmac_secret." example:"127.0.0.1:8088|0.0.0.0:8443"`
	Path           string         `yaml:"path" doc:"URL path that takes POSTs; <path>/health answers GET. Other paths are 404."`
	Token          string         `yaml:"token" secret:"true" doc:"Bearer token every request must carry (Authorization: Bearer <token>); empty: none."`
	HMACSecret     string         `yaml:"hmac_secret" secret:"true" doc:"Secret of the body signature (GitHub style: hmac_header = sha256=<hex HMAC-SHA256 of the raw body>); empty: none."`
	HMACHeader     string         `yaml:"hmac_header" doc:"Header holding the body signature."`
	TLSCertFile    string         `yaml:"tls_cert_file" doc:"PEM certificate (chain); with tls_key_file the endpoint speaks HTTPS only."`
	TLSKeyFile     string         `yaml:"tls_key_file" secret:"true" doc:"PEM private key of tls_cert_file."`
	MaxBodyBytes   int64          `yaml:"max_body_bytes" doc:"Largest request body; a larger one is refused with 413."`
	Format         string         `yaml:"format" enum:"auto,json,ndjson" doc:"Body format. json: an object is one packet, an array one packet per element; ndjson: one packet per line; auto: ndjson for Content-Type application/x-ndjson, else json."`
	Kind           string         `yaml:"kind" doc:"Packet kind."`
	SourceID       string         `yaml:"source_id" doc:"Packet source_id; default the node id."`
	SourceIDHeader string         `yaml:"source_id_header" doc:"Header whose value, when present, is the source_id instead (e.g. X-Source-Id); empty: not read." example:"X-Source-Id"`
	Ack            string         `yaml:"ack" enum:"auto,after_commit,on_accept" doc:"When to answer. after_commit: 202 once a durable sink downstream committed every packet; on_accept: 200 once the packets are handed downstream; auto: after_commit when a committing sink (SqliteQueueSink) is downstream, else on_accept."`
	AckTimeoutSec  plugin.Seconds `yaml:"ack_timeout_sec" doc:"How long a request may wait for its packets to be taken downstream and, with after_commit, committed; past it the answer is 503 (the packets may still be stored: retry with the same Idempotency-Key)."`
	// HandoffTimeoutSec is the short bound on waiting for the graph: a
	// request that cannot be handed to it in this time is refused (429),
	// not buffered.
	HandoffTimeoutSec    plugin.Seconds `yaml:"handoff_timeout_sec" advanced:"true" doc:"How long a request may wait for the graph to take it (room in the hand-off queue, then its turn) before it is refused with 429 and Retry-After; nothing of it was emitted then."`
	QueueSize            int            `yaml:"queue_size" advanced:"true" doc:"Requests parsed and waiting for the graph to take them (the hand-off queue's bound)."`
	MaxInflight          int            `yaml:"max_inflight" doc:"Requests handled at once (reading, waiting for the graph or for the commit); more are refused with 429."`
	RetryAfterSec        int            `yaml:"retry_after_sec" advanced:"true" doc:"Retry-After value (seconds) of a 429 or 503."`
	ReadHeaderTimeoutSec plugin.Seconds `yaml:"read_header_timeout_sec" advanced:"true" doc:"Time a client has to send its request headers (slow clients are cut off)."`
	ReadTimeoutSec       plugin.Seconds `yaml:"read_timeout_sec" doc:"Time a client has to send its whole request, body included."`
	IdleTimeoutSec       plugin.Seconds `yaml:"idle_timeout_sec" advanced:"true" doc:"How long a keep-alive connection may sit idle."`
	ShutdownTimeoutSec   plugin.Seconds `yaml:"shutdown_timeout_sec" advanced:"true" doc:"At a stop, how long requests in flight may take to finish before their connections are closed."`
}

// Defaults is the config every key starts from.
var Defaults = Config{
	Listen: DefaultListen, Path: "/ingest", HMACHeader: "X-Signature-256", MaxBodyBytes: 1 << 20,
	Format: FormatAuto, Kind: "event", Ack: AckAuto, AckTimeoutSec: 10, HandoffTimeoutSec: 0.5,
	QueueSize: 64, MaxInflight: 256, RetryAfterSec: 1, ReadHeaderTimeoutSec: 5, ReadTimeoutSec: 30,
	IdleTimeoutSec: 60, ShutdownTimeoutSec: 5,
}

// Validate checks ranges and refuses to expose the endpoint to the network
// without TLS and credentials (the rule of `schnitzel serve`).
func (c *Config) Validate() error {
	var errs []error // all of them, so one validation shows every problem
	errs = append(errs, c.checkListen())
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, "?# ") {
		errs = append(errs, plugin.Errorf("path", "must be a URL path starting with / (no query), got %q", c.Path))
	}
	if c.HMACSecret != "" && strings.TrimSpace(c.HMACHeader) == "" {
		errs = append(errs, plugin.Errorf("hmac_header", "must name a header when hmac_secret is set"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, plugin.Errorf("tls_cert_file", "tls_cert_file and tls_key_file go together: set both or neither"))
	}
	if strings.TrimSpace(c.Kind) == "" {
		errs = append(errs, plugin.Errorf("kind", "must not be empty"))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, plugin.Errorf("max_body_bytes", "must be > 0, got %d", c.MaxBodyBytes))
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"queue_size", c.QueueSize}, {"max_inflight", c.MaxInflight}, {"retry_after_sec", c.RetryAfterSec}} {
		if n.v <= 0 {
			errs = append(errs, plugin.Errorf(n.key, "must be > 0, got %d", n.v))
		}
	}
	for _, d := range []struct {
		key string
		v   plugin.Seconds
	}{
		{"ack_timeout_sec", c.AckTimeoutSec}, {"handoff_timeout_sec", c.HandoffTimeoutSec},
		{"read_header_timeout_sec", c.ReadHeaderTimeoutSec}, {"read_timeout_sec", c.ReadTimeoutSec},
		{"idle_timeout_sec", c.IdleTimeoutSec}, {"shutdown_timeout_sec", c.ShutdownTimeoutSec},
	} {
		if d.v <= 0 {
			errs = append(errs, plugin.Errorf(d.key, "must be > 0 seconds, got %v", d.v))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) checkListen() error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return plugin.Errorf("listen", "%q: %v (want HOST:PORT, e.g. %s)", c.Listen, err, DefaultListen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return plugin.Errorf("listen", "%q: port must be 0..65535", c.Listen)
	}
	if netaddr.Loopback(host) {
		return nil
	}
	var missing []string
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		missing = append(missing, "tls_cert_file and tls_key_file")
	}
	if c.Token == "" && c.HMACSecret == "" {
		missing = append(missing, "token or hmac_secret")
	}
	if len(missing) == 0 {
		return nil
	}
	where := host
	if where == "" {
		where = "every interface"
	}
	return plugin.Errorf("listen", "refusing to listen on %s (%s, not loopback) without TLS and credentials; fix: set %s, or listen on loopback (127.0.0.1:%s) behind an HTTPS reverse proxy",
		c.Listen, where, strings.Join(missing, " and "), port)
}

// Register adds HttpServerSource to r.
func Register(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[Config]{
		Name:       Name,
		Role:       plugin.RoleSource,
		Out:        []string{"*"},
		OutProfile: plugin.ProfileJSON,
		Summary:    "HTTP endpoint: each POSTed JSON value or NDJSON line is a packet; answers 202 after a durable commit, 429 when the graph pushes back.",
		Description: `
POST <path> with a JSON object (one packet), a JSON array (one packet per element) or NDJSON
(Content-Type application/x-ndjson: one packet per line). The payload is the JSON value; meta has
http_remote, http_path and http_request_id (X-Request-Id, else a fresh id, echoed back). An
Idempotency-Key header sets meta.idempotency_key to <key>#<index>, so a retried request is not
stored twice by a SqliteQueueSink.

A request's packets are emitted together, in order. With ack after_commit (the default in front
of a SqliteQueueSink) the answer is 202 {"accepted":N} once every packet is committed; with
on_accept it is 200 {"accepted":N} once they are handed downstream. Errors: 401 (token,
WWW-Authenticate; missing signature), 403 (wrong signature), 404, 405, 413, 415, 400 (naming the
line and offset), 429 + Retry-After (not taken within handoff_timeout_sec, or max_inflight reached), 503 (not
taken downstream or not committed within ack_timeout_sec, nacked, or stopping). docs/connectors-http.md has the details.`,
		Defaults: Defaults,
		Metrics: []plugin.MetricSpec{
			{Name: "requests_total", Help: "HTTP requests received, whatever the answer."},
			{Name: "accepted_total", Help: "Packets accepted (answered 200, or 202 after their commit)."},
			{Name: "unauthorized_total", Help: "Requests refused for a missing or wrong token or signature (401, 403)."},
			{Name: "too_large_total", Help: "Requests refused because the body exceeded max_body_bytes (413)."},
			{Name: "bad_request_total", Help: "Requests refused as malformed: bad JSON, wrong content type, method or path (400, 404, 405, 415)."},
			{Name: "throttled_total", Help: "Requests refused because the graph pushed back (429 with Retry-After)."},
			{Name: "not_committed_total", Help: "Requests answered 503: not committed within ack_timeout_sec, nacked by the sink, or cut off by a stop."},
			{Name: "inflight", Help: "Requests being handled now.", Gauge: true},
		},
		NewSource: newSource,
	})
}
