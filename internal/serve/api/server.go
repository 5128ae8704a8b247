package api

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
)

// DefaultMaxBody bounds a request body when Config.MaxBody is 0.
const DefaultMaxBody = 4 << 20

// DefaultMaxTaps bounds the tap streams one Server has open at once.
const DefaultMaxTaps = 64

// Config configures a Server. Token is required: New panics without it,
// because an API without auth is the upstream defect (D-API-3) we fix.
type Config struct {
	Token        string   // required, compared in constant time
	LoginCode    string   // one-time code for GET /login?code=...: sets the session cookie once
	AllowedHosts []string // Host names/addresses accepted beside loopback ones
	CORSOrigins  []string // none: CORS closed
	MaxBody      int64    // 0: 4 MiB
	Audit        *audit.Log
	Plugins      func() any // the `plugins --json` payload
	Logger       *slog.Logger
	// MaxTaps bounds the tap streams open through this server; 0: 64.
	// (The Supervisor has its own bound over every client.)
	MaxTaps int
	// Console serves the web console (internal/serve/console) for GET and
	// HEAD of every path that is not a route nor under /api/, /metrics,
	// /login, /logout; without auth (the files hold no data), after the
	// Host check. nil: no console (404 as before).
	Console http.Handler
}

// Route is one entry of the route table. Every route, ours and the compat
// layer's, goes through the same middleware; Mutates and Open are the only
// per-route security switches (one declaration: D-API-9).
type Route struct {
	Method, Pattern string // Go 1.22 mux pattern path, e.g. "/api/v1/graphs/{name}"
	Mutates         bool   // content-type check, audit of refusals, CSRF rules
	Open            bool   // no auth (only GET /api/v1/health)
	Handler         http.HandlerFunc
}

// Server is the HTTP API: an http.Handler.
type Server struct {
	b        Backend
	cfg      Config
	log      *slog.Logger
	maxBody  int64
	maxTaps  int64
	tokenSum [32]byte

	mu     sync.RWMutex
	mux    *http.ServeMux // "METHOD /path" -> the route behind its middleware
	paths  *http.ServeMux // "/path" -> nothing: tells 405 from 404
	routes map[string]*Route
	allow  map[string][]string // path pattern -> methods

	sessions       *sessions
	login          loginCode
	taps           atomic.Int64
	refusals       refusalLimiter
	loginFails     loginLimiter
	metricsHandler http.Handler

	quit     chan struct{} // closed by CloseStreams
	quitOnce sync.Once
}

// New builds the server with every route of the API.
func New(b Backend, cfg Config) *Server {
	if cfg.Token == "" {
		panic("api: Config.Token is required")
	}
	s := &Server{b: b, cfg: cfg, log: cfg.Logger, maxBody: cfg.MaxBody, maxTaps: int64(cfg.MaxTaps),
		mux: http.NewServeMux(), paths: http.NewServeMux(), routes: map[string]*Route{}, allow: map[string][]string{},
		sessions: newSessions(), tokenSum: sum(cfg.Token), quit: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.maxTaps <= 0 {
		s.maxTaps = DefaultMaxTaps
	}
	s.login.set(cfg.LoginCode)
	s.metricsHandler = promhttp.HandlerFor(newMetricsRegistry(b), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	s.Handle(s.routeTable()...)
	return s
}

// routeTable is every route of our API, in one place.
func (s *Server) routeTable() []Route {
	return []Route{
		{Method: "GET", Pattern: "/api/v1/health", Open: true, Handler: s.health},
		{Method: "GET", Pattern: "/api/v1/graphs", Handler: s.listGraphs},
		{Method: "GET", Pattern: "/api/v1/graphs/{name}", Handler: s.getGraph},
		{Method: "PUT", Pattern: "/api/v1/graphs/{name}", Mutates: true, Handler: s.putGraph},
		{Method: "DELETE", Pattern: "/api/v1/graphs/{name}", Mutates: true, Handler: s.deleteGraph},
		{Method: "POST", Pattern: "/api/v1/graphs/{name}/start", Mutates: true, Handler: s.control("start")},
		{Method: "POST", Pattern: "/api/v1/graphs/{name}/stop", Mutates: true, Handler: s.control("stop")},
		{Method: "POST", Pattern: "/api/v1/graphs/{name}/restart", Mutates: true, Handler: s.control("restart")},
		{Method: "GET", Pattern: "/api/v1/graphs/{name}/report", Handler: s.report},
		{Method: "GET", Pattern: "/api/v1/graphs/{name}/tap", Handler: s.tap},
		// Validate changes nothing, but it is a POST with a body: the same
		// content-type and origin rules as a mutation (D-API-1).
		{Method: "POST", Pattern: "/api/v1/validate", Mutates: true, Handler: s.validate},
		{Method: "GET", Pattern: "/api/v1/plugins", Handler: s.plugins},
		{Method: "GET", Pattern: "/api/v1/audit", Handler: s.auditTail},
		{Method: "GET", Pattern: "/metrics", Handler: s.serveMetrics},
		{Method: "GET", Pattern: "/login", Open: true, Handler: s.loginHandler},
		{Method: "POST", Pattern: "/logout", Mutates: true, Handler: s.logout},
		// The console's login (token exchange) and "who am I". Open: they
		// authenticate themselves; POST is a mutation for the origin and
		// content-type rules.
		{Method: "POST", Pattern: "/api/v1/session", Open: true, Mutates: true, Handler: s.createSession},
		{Method: "GET", Pattern: "/api/v1/session", Open: true, Handler: s.getSession},
		{Method: "DELETE", Pattern: "/api/v1/session", Mutates: true, Handler: s.logout},
		{Method: "GET", Pattern: "/api/v1/queues", Handler: s.listQueues},
		{Method: "GET", Pattern: "/api/v1/queues/peek", Handler: s.peekQueue},
		{Method: "POST", Pattern: "/api/v1/queues/requeue", Mutates: true, Handler: s.requeueQueue},
	}
}

// Handle adds routes behind the same middleware. A duplicate pattern
// panics, as http.ServeMux does.
func (s *Server) Handle(routes ...Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range routes {
		rt := routes[i]
		if rt.Handler == nil || rt.Method == "" || !strings.HasPrefix(rt.Pattern, "/") {
			panic("api: route needs a method, a /pattern and a handler: " + rt.Method + " " + rt.Pattern)
		}
		key := rt.Method + " " + rt.Pattern
		s.mux.Handle(key, s.chain(&rt))
		s.routes[key] = &rt
		if _, ok := s.allow[rt.Pattern]; !ok {
			s.paths.Handle(rt.Pattern, http.NotFoundHandler())
		}
		s.allow[rt.Pattern] = append(s.allow[rt.Pattern], rt.Method)
		if rt.Method == "GET" && !slices.Contains(s.allow[rt.Pattern], "HEAD") {
			s.allow[rt.Pattern] = append(s.allow[rt.Pattern], "HEAD")
		}
		sort.Strings(s.allow[rt.Pattern])
	}
}

// CloseStreams ends every open tap stream (event: end, reason "server
// shutting down") and any opened later. http.Server.Shutdown waits for
// handlers to return and does not cancel their contexts, so a long stream
// would hold it up; NewHTTPServer registers this with RegisterOnShutdown.
func (s *Server) CloseStreams() { s.quitOnce.Do(func() { close(s.quit) }) }

// Routes lists every registered route (ours and Handle's), sorted by
// pattern then method: the governance snapshot derives the mutating and
// open endpoints from this one table instead of a hand-written list
// (D-API-9).
func (s *Server) Routes() []Route {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Route, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, *rt)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// reqInfo is what the middleware learns about a request.
type reqInfo struct {
	id    string
	actor string
}

type ctxKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{actor: "anonymous"}
}

// RequestID is the request's id, also sent as X-Request-Id.
func RequestID(r *http.Request) string { return info(r).id }

// Actor is who made the request: "token", "session" or "anonymous".
func Actor(r *http.Request) string { return info(r).actor }

// ServeHTTP runs the checks every request passes (request id, Host, CORS),
// then the route's own chain, or a 404/405 in our envelope.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ri := &reqInfo{id: requestID(r), actor: "anonymous"}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
	h := w.Header()
	h.Set("X-Request-Id", ri.id)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")

	if !s.hostAllowed(r.Host) {
		s.refuse(w, r, "request.refused", http.StatusMisdirectedRequest, "misdirected_host",
			"the Host header is not a loopback name or address, nor an allowed host (--allowed-hosts)", "host not allowed",
			map[string]any{"host": clip(r.Host, 128)})
		return
	}
	if !s.cors(w, r) {
		return
	}

	// A path the mux would clean (//, /./, /../) is not a route: the mux
	// would answer it with a redirect that bypasses our envelope.
	canonical := canonicalPath(r.URL.EscapedPath())
	s.mu.RLock()
	_, pattern := s.mux.Handler(r)
	_, known := s.routes[pattern]
	s.mu.RUnlock()
	known = known && canonical
	if known {
		s.mux.ServeHTTP(w, r)
		return
	}
	if s.cfg.Console != nil && canonical && (r.Method == http.MethodGet || r.Method == http.MethodHead) && consolePath(r.URL.Path) {
		s.cfg.Console.ServeHTTP(w, r)
		return
	}
	// Unknown routes need auth too, so the route table is not probed
	// anonymously.
	if !s.authenticate(w, r, ri) {
		return
	}
	s.mu.RLock()
	_, ppat := s.paths.Handler(r)
	methods, isPath := s.allow[ppat]
	s.mu.RUnlock()
	if isPath && canonical {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		WriteError(w, r, http.StatusMethodNotAllowed, "method_not_allowed",
			"method "+r.Method+" is not allowed here; allowed: "+strings.Join(methods, ", "), nil)
		return
	}
	WriteError(w, r, http.StatusNotFound, "not_found", "no such route: "+clip(r.URL.Path, 200), nil)
}

// consolePath: a path the console's pages may have. Unknown API paths
// stay JSON 404s behind auth, so the route table is not probed.
func consolePath(p string) bool {
	for _, pre := range []string{"/api/", "/metrics", "/login", "/logout"} {
		if p == strings.TrimSuffix(pre, "/") || strings.HasPrefix(p, pre) {
			return false
		}
	}
	return true
}

func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// chain wraps one route's handler in the per-route middleware: origin check
// on mutations, auth, mutation checks, body limit.
func (s *Server) chain(rt *Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := info(r)
		if rt.Mutates && !s.originAllowed(r) {
			s.refuse(w, r, "request.refused", http.StatusForbidden, "forbidden",
				"cross-origin request refused (the Origin is not this server nor an allowed origin)", "cross-origin",
				map[string]any{"origin": clip(r.Header.Get("Origin"), 128)})
			return
		}
		if rt.Open {
			_, _ = s.identify(r, ri) // optional: health reports who asks
		} else if !s.authenticate(w, r, ri) {
			return
		}
		if rt.Mutates {
			if ri.actor == "session" && r.Header.Get("Origin") == "" {
				// A browser sends Origin on every non-GET request; a
				// cookie-authenticated mutation without one did not come
				// from our page.
				s.refuse(w, r, "request.refused", http.StatusForbidden, "forbidden",
					"a session-cookie request that changes state must carry an Origin header", "no origin with session", nil)
				return
			}
			if !s.mutationChecks(w, r) {
				return
			}
		}
		if r.ContentLength > s.maxBody {
			s.refuse(w, r, "request.refused", http.StatusRequestEntityTooLarge, "too_large",
				"request body too large (limit "+itoa(s.maxBody)+" bytes)", "body too large", map[string]any{"content_length": r.ContentLength})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		rt.Handler(w, r)
	})
}

// mutationChecks: a state-changing request carries JSON or YAML (a form or
// text/plain POST is what a web page can send without a preflight:
// D-API-1). An empty POST or DELETE body is fine with any content type.
func (s *Server) mutationChecks(w http.ResponseWriter, r *http.Request) bool {
	if (r.Method == http.MethodPost || r.Method == http.MethodDelete) && r.ContentLength == 0 {
		return true
	}
	if mediaTypeAllowed(r.Header.Get("Content-Type")) {
		return true
	}
	s.refuse(w, r, "request.refused", http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type must be application/json or application/yaml (also application/x-yaml, text/yaml)", "unsupported content type",
		map[string]any{"content_type": clip(r.Header.Get("Content-Type"), 100)})
	return false
}

// refuse answers a refused request and audits it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, action string, status int, kind, msg, reason string, meta map[string]any) {
	if s.refusals.allow() {
		s.Audit(r, action, clip(r.URL.Path, 200), "refused", reason, withSuppressed(meta, s.refusals.takeSuppressed()))
	}
	WriteError(w, r, status, kind, msg, nil)
}

// Audit appends an event for r (request id, actor, remote address, method)
// to Config.Audit. A failed append is logged: the action already happened
// and the client must learn its outcome (D-API-6).
func (s *Server) Audit(r *http.Request, action, target, status, reason string, meta map[string]any) {
	if s.cfg.Audit == nil {
		return
	}
	m := make(map[string]any, len(meta)+2)
	for k, v := range meta {
		m[k] = v
	}
	m["remote"] = r.RemoteAddr
	m["method"] = r.Method
	err := s.cfg.Audit.Append(audit.Event{Actor: Actor(r), Action: action, Target: target, Status: status,
		Reason: reason, RequestID: RequestID(r), Meta: m})
	if err != nil {
		s.log.Error("audit append failed", "action", action, "target", target, "request_id", RequestID(r), "err", err)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
