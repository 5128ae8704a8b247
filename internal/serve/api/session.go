package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"sync"
	"time"
)

// Sessions live in memory only: a restart of serve logs the console out,
// which is the safe side. The cookie holds a random session id, never the
// token, so a leaked cookie is revocable (logout) and expires.
const (
	sessionTTL = 12 * time.Hour
	maxSession = 256
)

type sessions struct {
	mu sync.Mutex
	// Keyed by the id's hash: a map lookup by the secret itself could leak
	// its prefix through timing.
	m   map[[32]byte]time.Time // -> expiry
	now func() time.Time
}

func newSessions() *sessions { return &sessions{m: map[[32]byte]time.Time{}, now: time.Now} }

// create makes a session; past the cap the one closest to expiry goes.
func (ss *sessions) create() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for k, exp := range ss.m {
		if !now.Before(exp) {
			delete(ss.m, k)
		}
	}
	if len(ss.m) >= maxSession {
		var oldest [32]byte
		var oldestExp time.Time
		for k, exp := range ss.m {
			if oldestExp.IsZero() || exp.Before(oldestExp) {
				oldest, oldestExp = k, exp
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[sum(id)] = now.Add(sessionTTL)
	return id
}

func (ss *sessions) valid(id string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	k := sum(id)
	exp, ok := ss.m[k]
	if ok && !ss.now().Before(exp) {
		delete(ss.m, k)
		return false
	}
	return ok
}

func (ss *sessions) remove(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, sum(id))
}

// loginCode is the one-time code of the login URL serve prints: it works
// once, then it is burnt (a code copied from a terminal scrollback later
// is worthless).
type loginCode struct {
	mu    sync.Mutex
	sum   [32]byte
	armed bool
}

func (l *loginCode) set(code string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sum, l.armed = sum(code), code != ""
}

// use reports whether code is the armed code, and burns it if so.
func (l *loginCode) use(code string) bool {
	got := sum(code)
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := subtle.ConstantTimeCompare(got[:], l.sum[:]) == 1
	if !l.armed || code == "" || !ok {
		return false
	}
	l.armed = false
	return true
}

// loginHandler: GET /login?code=C sets the session cookie and redirects to
// the console (/).
func (s *Server) loginHandler(w http.ResponseWriter, r *http.Request) {
	// The code is a query parameter by design (a URL to click); it is
	// never logged or audited.
	if !s.login.use(r.URL.Query().Get("code")) {
		s.refuse(w, r, "auth.refused", http.StatusForbidden, "forbidden",
			"login code invalid or already used: restart schnitzel serve for a new login URL, or use the token", "invalid login code", nil)
		return
	}
	id := s.sessions.create()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	info(r).actor = "session"
	s.Audit(r, "auth.login", "session", "ok", "ok", nil)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout: POST /logout ends the session and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	s.Audit(r, "auth.logout", "session", "ok", "ok", nil)
	writeJSON(w, http.StatusOK, map[string]any{"logged_out": true})
}
