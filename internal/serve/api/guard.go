package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
)

// A client's X-Request-Id is kept when it is short and plain (it lands in
// headers and the audit log); otherwise a fresh one is made.
var clientRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); clientRequestID.MatchString(id) {
		return id
	}
	return audit.NewID()
}

// hostAllowed is the DNS-rebinding check (D-API-2): a page on evil.example
// that rebinds its name to 127.0.0.1 still sends Host: evil.example.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, a := range s.cfg.AllowedHosts {
		a = strings.TrimSuffix(strings.ToLower(strings.Trim(a, "[]")), ".")
		if a == host || strings.EqualFold(a, hostport) {
			return true
		}
	}
	return false
}

// sameOrigin: the Origin names this server as the browser reached it.
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
}

func (s *Server) corsListed(origin string) bool {
	return origin != "" && slices.ContainsFunc(s.cfg.CORSOrigins, func(o string) bool {
		return strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}

// originAllowed is the CSRF check on state-changing requests: no Origin
// (curl, the CLI), our own origin, or a listed one.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || sameOrigin(r, o) || s.corsListed(o)
}

// cors adds CORS headers for listed origins and answers preflights. It
// reports whether the request goes on. Credentials are never allowed: the
// console on another origin authenticates with the bearer token, and the
// session cookie is SameSite=Strict anyway.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	listed := s.corsListed(origin)
	if listed {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "X-Request-Id")
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return true
	}
	if !listed {
		s.refuse(w, r, "request.refused", http.StatusForbidden, "forbidden",
			"CORS preflight from an origin that is not allowed (--cors-origin)", "cors origin not allowed",
			map[string]any{"origin": clip(origin, 128)})
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, PUT, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return false
}

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// bearer returns the token of an "Authorization: Bearer X" header; the
// scheme is case-insensitive (RFC 9110; D-API-11).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// tokenOK compares in constant time: both sides are hashed first, so the
// comparison is of equal-length values whatever was presented.
func (s *Server) tokenOK(tok string) bool {
	got := sum(tok)
	return subtle.ConstantTimeCompare(got[:], s.tokenSum[:]) == 1
}

const sessionCookie = "schnitzel_session"

// identify sets ri.actor from valid credentials, if any. It reports what
// was wrong when credentials were presented but are not valid.
func (s *Server) identify(r *http.Request, ri *reqInfo) (ok bool, why string) {
	if tok, present := bearer(r); present {
		if s.tokenOK(tok) {
			ri.actor = "token"
			return true, ""
		}
		return false, "invalid bearer token"
	}
	if r.Header.Get("Authorization") != "" {
		return false, "malformed authorization header"
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if s.sessions.valid(c.Value) {
			ri.actor = "session"
			return true, ""
		}
		return false, "invalid or expired session"
	}
	return false, "missing bearer token"
}

// authenticate answers 401 (audited as auth.refused, with the remote
// address, never what was presented) unless the request has credentials.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, ri *reqInfo) bool {
	ok, why := s.identify(r, ri)
	if ok {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="schnitzel"`)
	s.refuse(w, r, "auth.refused", http.StatusUnauthorized, "unauthorized",
		"authentication required: Authorization: Bearer <token> (the token file of schnitzel serve)", why, nil)
	return false
}

var mutationTypes = []string{"application/json", "application/yaml", "application/x-yaml", "text/yaml"}

func mediaTypeAllowed(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && slices.Contains(mutationTypes, mt)
}

// refusalLimiter bounds the audit lines refused requests write (each is
// an fsync): a flood of bad requests costs at most burst lines a second,
// and the next line written says how many were left out.
type refusalLimiter struct {
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int64
}

const refusalBurst = 50

func (l *refusalLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= refusalBurst {
		l.suppressed++
		return false
	}
	l.n++
	return true
}

func (l *refusalLimiter) takeSuppressed() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}

func withSuppressed(meta map[string]any, n int64) map[string]any {
	if n == 0 {
		return meta
	}
	m := make(map[string]any, len(meta)+1)
	for k, v := range meta {
		m[k] = v
	}
	m["suppressed_before"] = n
	return m
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
