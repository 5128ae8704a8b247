package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func sessionFrom(t *testing.T, rp reply) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: rp.hdr}).Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

func TestLoginCookieLogout(t *testing.T) {
	e := newEnv(t, nil)
	noRedirect := *e.srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path string, h map[string]string) reply {
		r := e.req("GET", path, "", h)
		resp, err := noRedirect.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return reply{code: resp.StatusCode, hdr: resp.Header}
	}

	for _, code := range []string{"", "wrong", "login-code-12", "login-code-1234"} {
		rp := get("/login?code="+code, nil)
		if rp.code != 403 || sessionFrom(t, rp) != nil {
			t.Errorf("code %q: %d %v", code, rp.code, rp.hdr)
		}
		e.audited(rp.hdr.Get("X-Request-Id"), "auth.refused", "refused")
	}
	rp := get("/login?code=login-code-123", nil)
	c := sessionFrom(t, rp)
	if rp.code != 303 || rp.hdr.Get("Location") != "/" || c == nil {
		t.Fatalf("login: %d %v", rp.code, rp.hdr)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge <= 0 {
		t.Errorf("cookie %+v", c)
	}
	if c.Value == testToken || strings.Contains(c.Value, testToken) || len(c.Value) < 32 {
		t.Errorf("cookie value %q is not a fresh session id", c.Value)
	}
	if rp := get("/login?code=login-code-123", nil); rp.code != 403 || sessionFrom(t, rp) != nil {
		t.Errorf("second use of the code: %d", rp.code)
	}
	raw := e.events()
	for _, ev := range raw {
		if strings.Contains(ev.Target+ev.Reason, "login-code") {
			t.Errorf("the login code is in the audit: %+v", ev)
		}
	}

	cookie := map[string]string{"Cookie": sessionCookie + "=" + c.Value}
	if rp := e.do("GET", "/api/v1/graphs", "", cookie); rp.code != 200 {
		t.Fatalf("cookie auth: %d %s", rp.code, rp.body)
	}
	if rp := e.do("GET", "/api/v1/graphs", "", map[string]string{"Cookie": sessionCookie + "=" + c.Value + "x"}); rp.code != 401 {
		t.Errorf("forged cookie: %d", rp.code)
	}
	if rp := e.do("GET", "/api/v1/graphs", "", map[string]string{"Cookie": sessionCookie + "=" + testToken}); rp.code != 401 {
		t.Errorf("token as cookie: %d", rp.code)
	}
	// A cookie-authenticated mutation needs our Origin.
	put := func(h map[string]string) reply {
		m := map[string]string{"Content-Type": yamlCT}
		for k, v := range h {
			m[k] = v
		}
		return e.do("PUT", "/api/v1/graphs/g1", goodGraph, m)
	}
	if rp := put(cookie); rp.code != 403 {
		t.Errorf("cookie PUT without Origin: %d", rp.code)
	}
	if rp := put(map[string]string{"Cookie": cookie["Cookie"], "Origin": "http://localhost:5173"}); rp.code != 403 {
		t.Errorf("cookie PUT from another local origin: %d", rp.code)
	}
	rp2 := put(map[string]string{"Cookie": cookie["Cookie"], "Origin": e.srv.URL})
	if rp2.code != 201 {
		t.Fatalf("cookie PUT same origin: %d %s", rp2.code, rp2.body)
	}
	if ev := e.audited(rp2.hdr.Get("X-Request-Id"), "graph.apply", "ok"); ev.Actor != "session" {
		t.Errorf("actor %q", ev.Actor)
	}

	rp = e.do("POST", "/logout", "", map[string]string{"Cookie": cookie["Cookie"], "Origin": e.srv.URL})
	if rp.code != 200 {
		t.Fatalf("logout: %d %s", rp.code, rp.body)
	}
	if lc := sessionFrom(t, rp); lc == nil || lc.Value != "" || lc.MaxAge >= 0 {
		t.Errorf("logout cookie %+v", lc)
	}
	e.audited(rp.hdr.Get("X-Request-Id"), "auth.logout", "ok")
	if rp := e.do("GET", "/api/v1/graphs", "", cookie); rp.code != 401 {
		t.Errorf("cookie after logout: %d", rp.code)
	}
}

func TestLoginDisabledWithoutCode(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LoginCode = "" })
	for _, q := range []string{"", "?code=", "?code=x"} {
		if rp := e.do("GET", "/login"+q, "", nil); rp.code != 403 {
			t.Errorf("login%s: %d", q, rp.code)
		}
	}
}

func TestSessionsExpireAndCap(t *testing.T) {
	ss := newSessions()
	now := ss.now()
	ss.now = func() time.Time { return now }
	first := ss.create()
	if !ss.valid(first) {
		t.Fatal("fresh session invalid")
	}
	ss.now = func() time.Time { return now.Add(sessionTTL) }
	if ss.valid(first) {
		t.Fatal("expired session valid")
	}
	ss.now = func() time.Time { return now }
	var ids []string
	for i := range maxSession + 10 {
		ss.now = func() time.Time { return now.Add(time.Duration(i) * time.Second) }
		ids = append(ids, ss.create())
	}
	if len(ss.m) != maxSession {
		t.Fatalf("%d sessions, cap %d", len(ss.m), maxSession)
	}
	if ss.valid(ids[0]) || !ss.valid(ids[len(ids)-1]) {
		t.Errorf("the cap must evict the oldest")
	}
}
