package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzRequest throws arbitrary methods, paths, headers and bodies at the
// handler: it must never panic, never answer 2xx to a request without the
// token (but the open health route), never fail with 500, and every error
// must be our envelope.
func FuzzRequest(f *testing.F) {
	seeds := []struct {
		method, path, hk, hv, ct string
		body                     string
		auth                     uint8
	}{
		{"GET", "/api/v1/health", "", "", "", "", 0},
		{"GET", "/api/v1/graphs", "Authorization", "bearer x", "", "", 0},
		{"PUT", "/api/v1/graphs/g1", "Origin", "http://evil.example", "application/yaml", goodGraph, 2},
		{"PUT", "/api/v1/graphs/g1", "", "", "text/plain", goodGraph, 0},
		{"POST", "/api/v1/graphs/g1/stop", "Host", "evil.example", "", "", 2},
		{"POST", "/api/v1/validate?name=..", "", "", "application/yaml", badGraph, 2},
		{"OPTIONS", "/api/v1/graphs/g1", "Access-Control-Request-Method", "PUT", "", "", 0},
		{"GET", "/api/v1/graphs/g1/tap?node=src&limit=1", "", "", "", "", 2},
		{"GET", "/login?code=x", "", "", "", "", 0},
		{"GET", "/api/v1/audit?limit=-1&since=%zz", "", "", "", "", 2},
		{"DELETE", "/api/v1/graphs/%2e%2e", "Cookie", "schnitzel_session=abc", "", "", 1},
		{"GET", "/api/v1//graphs/../../metrics", "X-Request-Id", "\x00\n", "", "", 1},
		{"PATCH", "/metrics", "Content-Length", "99999999", "application/json", "{", 2},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.hk, s.hv, s.ct, []byte(s.body), s.auth, false)
	}
	fb := newFake()
	if _, err := fb.Apply("g1", []byte(goodGraph), serveOpts()); err != nil {
		f.Fatal(err)
	}
	srv := New(fb, Config{Token: testToken, LoginCode: "fuzz-login-code", MaxBody: 4096})
	f.Fuzz(func(t *testing.T, method, path, hk, hv, ct string, body []byte, authMode uint8, chunked bool) {
		if method == "" {
			method = "GET"
		}
		p, q, _ := strings.Cut(path, "?")
		r := &http.Request{Method: method, URL: &url.URL{Path: p, RawQuery: q}, Host: "127.0.0.1:18700",
			Header: http.Header{}, Body: http.NoBody, RemoteAddr: "127.0.0.1:40000", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		if len(body) > 0 {
			r.Body = httpBody(body)
			r.ContentLength = int64(len(body))
			if chunked {
				r.ContentLength = -1
			}
		}
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if hk != "" {
			if strings.EqualFold(hk, "Host") {
				r.Host = hv
			} else {
				r.Header[hk] = append(r.Header[hk], hv)
			}
		}
		authed := false
		switch authMode % 3 {
		case 1:
			r.Header.Set("Authorization", "Bearer "+hv)
		case 2:
			r.Header.Set("Authorization", "Bearer "+testToken)
			authed = true
		}
		if strings.Contains(strings.Join(r.Header.Values("Authorization"), " "), testToken) {
			authed = true // the fuzzer cannot know it, but stay honest
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		r = r.WithContext(ctx)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)

		code := w.Code
		open := (r.Method == "GET" || r.Method == "HEAD") && r.URL.Path == "/api/v1/health"
		if !authed && code >= 200 && code < 300 && !open {
			t.Fatalf("%s %q answered %d without the token: %s", r.Method, path, code, w.Body.Bytes())
		}
		if code >= 500 {
			t.Fatalf("%s %q: %d %s", r.Method, path, code, w.Body.Bytes())
		}
		if code >= 400 {
			if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Fatalf("%d with Content-Type %q", code, ct)
			}
			var env struct {
				Status string `json:"status"`
				Error  struct {
					Kind string `json:"kind"`
				} `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Status != "error" || env.Error.Kind == "" {
				t.Fatalf("%d not in the envelope: %s", code, w.Body.Bytes())
			}
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("headers %v", w.Header())
		}
	})
}

type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

func httpBody(b []byte) bodyReader { return bodyReader{bytes.NewReader(b)} }
