// Package client is a small Go client for schnitzel serve's HTTP API: the
// CLI's `graphs`, `tap`, `top` and `fleet` commands are built on it. It
// speaks the routes and shapes of internal/serve/api and turns the API's
// error envelope into an *APIError.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
)

// DefaultServer is where schnitzel serve listens by default.
const DefaultServer = "http://127.0.0.1:18700"

// Client talks to one serve instance.
type Client struct {
	base    *url.URL
	token   string
	http    *http.Client
	timeout time.Duration
	// tokenFrom: Options.TokenFrom.
	tokenFrom string
}

// Options configure New.
type Options struct {
	Server string // base URL; "": DefaultServer
	Token  string // bearer token (required by every route but health)
	// CAFile is a PEM bundle to trust for an https server beside the
	// system roots (a self-signed --tls-cert).
	CAFile string
	// Timeout bounds one request; 0: 30 s. Streams (Tap) are not bounded.
	Timeout time.Duration
	// TokenFrom says where Token came from ("the token file F"), for the
	// hint when the server refuses it.
	TokenFrom string
}

// New checks the server URL and builds a client.
func New(o Options) (*Client, error) {
	s := strings.TrimSpace(o.Server)
	if s == "" {
		s = DefaultServer
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want a URL like %s", s, DefaultServer)
	}
	if u.User != nil {
		return nil, fmt.Errorf("server %q: credentials in the URL are not supported (use the token file)", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", o.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// No http.Client timeout: a tap is a stream; do bounds each request.
	return &Client{base: u, token: o.Token, http: &http.Client{Transport: tr}, timeout: timeout, tokenFrom: o.TokenFrom}, nil
}

// ReadToken reads a token file: the first line, trimmed. An empty file is
// an error (a request without a token would only be refused).
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

// Server is the base URL the client talks to.
func (c *Client) Server() string { return c.base.String() }

// APIError is an error answer of the API: its envelope
// {"status":"error","error":{"kind","message","details"}}, or for an answer
// that is not one (a proxy's page), kind "http_<status>" and the body.
type APIError struct {
	Status  int
	Kind    string
	Message string
	Details json.RawMessage
	// Errors and Warnings are the diagnostics of an invalid_graph answer.
	Errors, Warnings engine.Diags
}

// Error is "kind: message" then each diagnostic on its own line.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind)
	b.WriteString(": ")
	b.WriteString(e.Message)
	for _, d := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	for _, d := range e.Warnings {
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

// IsKind reports whether err is an *APIError of that kind.
func IsKind(err error, kind string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Kind == kind
}

func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, ctype string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), r)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// do sends one request and decodes a 2xx JSON answer into out (nil: drop
// it). It returns the HTTP status.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, ctype string, body []byte, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, q, ctype, body)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w (is schnitzel serve running there?)", method, c.base.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		err := decodeError(resp.StatusCode, data)
		if resp.StatusCode == http.StatusUnauthorized && c.tokenFrom != "" {
			// The usual cause: a token file of another serve (a different
			// --state), so say which one was sent and what to pass instead.
			err = fmt.Errorf("%w\n  the server %s refused %s\n  fix: pass --token-file STATE/token of that serve (its --state; the serve log names it), or set SCHNITZEL_TOKEN_FILE", err, c.base.Redacted(), c.tokenFrom)
		}
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: answer is not the expected JSON: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// decodeError reads our envelope; upstream's {"detail": ...} and plain
// bodies are kept as messages.
func decodeError(status int, data []byte) error {
	var env struct {
		Status string `json:"status"`
		Error  *struct {
			Kind    string          `json:"kind"`
			Message string          `json:"message"`
			Reason  string          `json:"reason"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
		Detail any `json:"detail"`
	}
	e := &APIError{Status: status, Kind: "http_" + strconv.Itoa(status)}
	if json.Unmarshal(data, &env) == nil && env.Error != nil && env.Error.Kind != "" {
		e.Kind, e.Message, e.Details = env.Error.Kind, env.Error.Message, env.Error.Details
		if e.Message == "" {
			e.Message = env.Error.Reason
		}
		if len(e.Details) > 0 {
			var d struct {
				Errors   engine.Diags `json:"errors"`
				Warnings engine.Diags `json:"warnings"`
			}
			if json.Unmarshal(e.Details, &d) == nil {
				e.Errors, e.Warnings = d.Errors, d.Warnings
			}
		}
		return e
	}
	if env.Detail != nil {
		e.Message = fmt.Sprint(env.Detail)
		return e
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = msg
	return e
}

func graphPath(name, suffix string) string {
	return "/api/v1/graphs/" + url.PathEscape(name) + suffix
}

// Health is GET /api/v1/health (open): the envelope's data.
func (c *Client) Health(ctx context.Context) (map[string]any, error) {
	var env struct {
		Data map[string]any `json:"data"`
	}
	_, err := c.do(ctx, http.MethodGet, "/api/v1/health", nil, "", nil, &env)
	return env.Data, err
}

// List is GET /api/v1/graphs.
func (c *Client) List(ctx context.Context) ([]serve.GraphStatus, error) {
	var out struct {
		Graphs []serve.GraphStatus `json:"graphs"`
	}
	_, err := c.do(ctx, http.MethodGet, "/api/v1/graphs", nil, "", nil, &out)
	return out.Graphs, err
}

// Detail is GET /api/v1/graphs/{name}: the graph's detail and its report.
type Detail struct {
	serve.GraphDetail
	Report json.RawMessage `json:"report"`
}

// Get is GET /api/v1/graphs/{name}.
func (c *Client) Get(ctx context.Context, name string) (*Detail, error) {
	var d Detail
	if _, err := c.do(ctx, http.MethodGet, graphPath(name, ""), nil, "", nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Applied is the answer of Apply.
type Applied struct {
	Result serve.ApplyResult `json:"result"`
	Graph  serve.GraphStatus `json:"graph"`
}

// Apply is PUT /api/v1/graphs/{name} with the YAML; stopped applies it
// without starting it. An invalid graph is an *APIError of kind
// invalid_graph with its diagnostics.
func (c *Client) Apply(ctx context.Context, name string, yaml []byte, stopped bool) (*Applied, error) {
	var q url.Values
	if stopped {
		q = url.Values{"stopped": {"1"}}
	}
	var a Applied
	if _, err := c.do(ctx, http.MethodPut, graphPath(name, ""), q, "application/yaml", yaml, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Delete stops and removes a graph.
func (c *Client) Delete(ctx context.Context, name string) error {
	// No body, but a mutation: the API's media-type rule applies to DELETE.
	_, err := c.do(ctx, http.MethodDelete, graphPath(name, ""), nil, "application/json", nil, nil)
	return err
}

// Action is POST /api/v1/graphs/{name}/start|stop|restart.
func (c *Client) Action(ctx context.Context, name, action string) (*serve.GraphStatus, error) {
	switch action {
	case "start", "stop", "restart":
	default:
		return nil, fmt.Errorf("unknown action %q", action)
	}
	var out struct {
		Graph serve.GraphStatus `json:"graph"`
	}
	if _, err := c.do(ctx, http.MethodPost, graphPath(name, "/"+action), nil, "", nil, &out); err != nil {
		return nil, err
	}
	return &out.Graph, nil
}

// Report is GET /api/v1/graphs/{name}/report: the report JSON as sent.
func (c *Client) Report(ctx context.Context, name string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, http.MethodGet, graphPath(name, "/report"), nil, "", nil, &out)
	return out, err
}

// Validation is POST /api/v1/validate's answer.
type Validation struct {
	Graph    string       `json:"graph"`
	Valid    bool         `json:"valid"`
	Errors   engine.Diags `json:"errors"`
	Warnings engine.Diags `json:"warnings"`
}

// Validate checks YAML on the server (its registry, limits, env rules).
func (c *Client) Validate(ctx context.Context, yaml []byte) (*Validation, error) {
	var v Validation
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/validate", nil, "application/yaml", yaml, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// AuditEvent is one audit line as the API returns it.
type AuditEvent = audit.Event

// Audit is GET /api/v1/audit.
func (c *Client) Audit(ctx context.Context, limit int, since time.Time) ([]AuditEvent, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	var out struct {
		Events []AuditEvent `json:"events"`
	}
	_, err := c.do(ctx, http.MethodGet, "/api/v1/audit", q, "", nil, &out)
	return out.Events, err
}

// FleetStart is POST /api/v1/fleet/start with the files' text; streams
// empty: every enabled stream; baseDir: where relative input paths of the
// fleet file resolve (the fleet file's directory). The answer is returned
// as sent.
func (c *Client) FleetStart(ctx context.Context, fleetYAML, templateYAML []byte, streams []string, baseDir string) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{"fleet_yaml": string(fleetYAML), "template_yaml": string(templateYAML),
		"streams": nonNil(streams), "base_dir": baseDir})
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err = c.do(ctx, http.MethodPost, "/api/v1/fleet/start", nil, "application/json", body, &out)
	return out, err
}

// FleetStop is POST /api/v1/fleet/stop; streams empty: every fleet stream.
func (c *Client) FleetStop(ctx context.Context, streams []string) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{"streams": nonNil(streams)})
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err = c.do(ctx, http.MethodPost, "/api/v1/fleet/stop", nil, "application/json", body, &out)
	return out, err
}

// FleetStatus is GET /api/v1/fleet/status: the answer as sent.
func (c *Client) FleetStatus(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, http.MethodGet, "/api/v1/fleet/status", nil, "", nil, &out)
	return out, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TapHandler receives a tap stream's events.
type TapHandler struct {
	Packet  func(line []byte) error // each packet's JSON line; an error ends the tap
	Dropped func(total int64)       // cumulative packets the server dropped for this reader
}

// Tap streams GET /api/v1/graphs/{name}/tap until the server ends it (its
// reason is returned: "limit", "graph stopped", ...), ctx ends ("" and
// ctx's error) or h.Packet fails.
func (c *Client) Tap(ctx context.Context, name, node, port string, limit int, h TapHandler) (string, error) {
	q := url.Values{"node": {node}}
	if port != "" {
		q.Set("port", port)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	req, err := c.newRequest(ctx, http.MethodGet, graphPath(name, "/tap"), q, "", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("tap %s: %w (is schnitzel serve running there?)", c.base.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return "", decodeError(resp.StatusCode, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // a packet line may be large
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0: // end of one event
			if event == "" && data == nil {
				continue
			}
			ev := event
			if ev == "" {
				ev = "message"
			}
			switch ev {
			case "packet":
				if h.Packet != nil {
					if err := h.Packet(data); err != nil {
						return "", err
					}
				}
			case "dropped":
				var d struct {
					Dropped int64 `json:"dropped"`
				}
				if json.Unmarshal(data, &d) == nil && h.Dropped != nil {
					h.Dropped(d.Dropped)
				}
			case "end":
				var e struct {
					Reason string `json:"reason"`
				}
				_ = json.Unmarshal(data, &e)
				if e.Reason == "" {
					e.Reason = "ended"
				}
				return e.Reason, nil
			}
			event, data = "", nil
		case line[0] == ':': // comment / keep-alive
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				event = string(value)
			case "data":
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
		}
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("tap: %w", err)
	}
	return "", errors.New("tap: the server closed the stream without an end event")
}
