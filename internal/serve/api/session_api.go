package api

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"
)

// The console's token exchange: POST /api/v1/session {"token":"..."} sets
// the same session cookie as the one-time login URL, so the token is typed
// once and never kept by the page (nor put in a URL).

const (
	loginFailLimit  = 10 // failed token exchanges per remote address ...
	loginFailWindow = time.Minute
	maxLoginClients = 1024
)

// loginLimiter counts failed token exchanges per remote address: past the
// limit the address gets 429 until the window ends, so the token cannot be
// guessed at the speed of the network. (Loopback clients share one
// address; the limit leaves room for a few typos.)
type loginLimiter struct {
	mu  sync.Mutex
	m   map[string]*loginFails
	now func() time.Time
}

type loginFails struct {
	start time.Time
	n     int
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func (l *loginLimiter) blocked(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[addr]
	return f != nil && l.clock().Sub(f.start) < loginFailWindow && f.n >= loginFailLimit
}

func (l *loginLimiter) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

func (l *loginLimiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*loginFails{}
	}
	now := l.clock()
	f := l.m[addr]
	if f == nil || now.Sub(f.start) >= loginFailWindow {
		if len(l.m) >= maxLoginClients {
			for k, v := range l.m {
				if now.Sub(v.start) >= loginFailWindow {
					delete(l.m, k)
				}
			}
			if len(l.m) >= maxLoginClients {
				// Many addresses failing at once: they share one bucket
				// rather than grow the map without bound.
				addr = "*"
				if f = l.m[addr]; f != nil && now.Sub(f.start) < loginFailWindow {
					f.n++
					return
				}
			}
		}
		f = &loginFails{start: now}
		l.m[addr] = f
	}
	f.n++
}

func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request) {
	id := s.sessions.create()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// createSession: POST /api/v1/session {"token":"..."} -> 204 and the
// cookie; a wrong token is 401 (audited auth.refused); too many failures
// from one address, 429.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	addr := remoteHost(r)
	if s.loginFails.blocked(addr) {
		w.Header().Set("Retry-After", "60")
		s.refuse(w, r, "auth.refused", http.StatusTooManyRequests, "too_many",
			"too many failed logins from this address: wait a minute and retry", "login rate limited", nil)
		return
	}
	body, err := s.ReadBody(w, r)
	if err != nil {
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.refuse(w, r, "request.refused", http.StatusBadRequest, "bad_request", `body must be JSON {"token":"..."}`, "bad session body", nil)
		return
	}
	if req.Token == "" || !s.tokenOK(req.Token) {
		s.loginFails.fail(addr)
		s.refuse(w, r, "auth.refused", http.StatusUnauthorized, "unauthorized",
			"wrong token: paste the content of the token file of schnitzel serve (STATE/token)", "invalid token for session", nil)
		return
	}
	s.setSessionCookie(w, r)
	info(r).actor = "session"
	s.Audit(r, "auth.login", "session", "ok", "ok", map[string]any{"via": "token"})
	w.WriteHeader(http.StatusNoContent)
}

// getSession: GET /api/v1/session says who the caller is, 401 when nobody:
// the console asks at start, so this 401 is not audited (it is a page load,
// not a refused action).
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	if Actor(r) == "anonymous" {
		WriteError(w, r, http.StatusUnauthorized, "unauthorized", "not logged in", nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"actor": Actor(r)})
}
