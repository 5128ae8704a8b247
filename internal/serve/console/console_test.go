package console

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandler(t *testing.T) {
	h := newHandler(fstest.MapFS{
		"dist/index.html":            {Data: []byte("<!doctype html><title>app</title>")},
		"dist/assets/index-Ab12.js":  {Data: []byte("console.log(1)")},
		"dist/assets/index-Cd34.css": {Data: []byte("body{}")},
		"dist/favicon.svg":           {Data: []byte("<svg/>")},
	})
	cases := []struct {
		path, want, ctype, cache string
		code                     int
	}{
		{"/", "<!doctype html><title>app</title>", "text/html; charset=utf-8", "no-cache", 200},
		{"/index.html", "<!doctype html><title>app</title>", "text/html; charset=utf-8", "no-cache", 200},
		{"/graphs/fleet.cam-1", "<!doctype html><title>app</title>", "text/html; charset=utf-8", "no-cache", 200},
		{"/audit?since=x", "<!doctype html><title>app</title>", "text/html; charset=utf-8", "no-cache", 200},
		{"/assets/index-Ab12.js", "console.log(1)", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", 200},
		{"/assets/index-Cd34.css", "body{}", "text/css; charset=utf-8", "public, max-age=31536000, immutable", 200},
		{"/favicon.svg", "<svg/>", "image/svg+xml", "no-cache", 200},
		{"/assets/index-old.js", "", "", "no-cache", 404}, // a stale tab's chunk: not the page
		{"/api/v1/graphs", "", "", "", 404},
		{"/metrics", "", "", "", 404},
		{"/login", "", "", "", 404},
		{"/logout", "", "", "", 404},
	}
	for _, c := range cases {
		r := get(t, h, "GET", c.path)
		b := body(t, r)
		if r.StatusCode != c.code {
			t.Errorf("%s: %d %q, want %d", c.path, r.StatusCode, b, c.code)
			continue
		}
		if c.code == 200 && b != c.want {
			t.Errorf("%s: body %q", c.path, b)
		}
		if c.ctype != "" && r.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s: Content-Type %q", c.path, r.Header.Get("Content-Type"))
		}
		if c.cache != "" && r.Header.Get("Cache-Control") != c.cache {
			t.Errorf("%s: Cache-Control %q", c.path, r.Header.Get("Cache-Control"))
		}
		for k, v := range map[string]string{"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
			"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if r.Header.Get(k) != v {
				t.Errorf("%s: %s %q", c.path, k, r.Header.Get(k))
			}
		}
	}
	if r := get(t, h, "HEAD", "/graphs"); r.StatusCode != 200 || body(t, r) != "" {
		t.Errorf("HEAD: %d", r.StatusCode)
	}
	if r := get(t, h, "POST", "/"); r.StatusCode != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", r.StatusCode, r.Header)
	}
	if !strings.Contains(CSP, "script-src 'self';") || strings.Contains(CSP, "unsafe-eval") || !strings.Contains(CSP, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", CSP)
	}
}

// TestEmbeddedBundle: the committed build is in the binary, and its
// index.html loads nothing from elsewhere and runs no inline script (the
// CSP would block it: a blank page).
func TestEmbeddedBundle(t *testing.T) {
	h := Handler()
	r := get(t, h, "GET", "/")
	idx := body(t, r)
	if r.StatusCode != 200 || !strings.Contains(strings.ToLower(idx), "<!doctype html>") {
		t.Fatalf("embedded index.html: %d %q", r.StatusCode, idx)
	}
	for _, bad := range []string{"http://", "https://", "//cdn", "<script>"} {
		if strings.Contains(idx, bad) {
			t.Errorf("index.html contains %q: the console must work offline under the CSP", bad)
		}
	}
	// Every asset index.html names is served.
	for _, part := range strings.Split(idx, `"`) {
		if strings.HasPrefix(part, "/assets/") {
			if r := get(t, h, "GET", part); r.StatusCode != 200 {
				t.Errorf("%s named by index.html: %d", part, r.StatusCode)
			}
		}
	}
}

func TestGzip(t *testing.T) {
	js := strings.Repeat("console.log('schnitzel');\n", 200)
	h := newHandler(fstest.MapFS{
		"dist/index.html":        {Data: []byte("<!doctype html>")},
		"dist/assets/big-X1.js":  {Data: []byte(js)},
		"dist/assets/tiny-X2.js": {Data: []byte("1")},
	})
	req := httptest.NewRequest("GET", "/assets/big-X1.js", nil)
	req.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := rec.Result()
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Vary") != "Accept-Encoding" ||
		r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || r.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("headers %v", r.Header)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if string(got) != js || rec.Body.Len() >= len(js)/4 {
		t.Errorf("gzipped body: %d bytes for %d, round trip ok %v", rec.Body.Len(), len(js), string(got) == js)
	}
	// Without gzip in Accept-Encoding, or with q=0, or for a range: plain.
	for _, ae := range []string{"", "identity", "gzip;q=0"} {
		req := httptest.NewRequest("GET", "/assets/big-X1.js", nil)
		req.Header.Set("Accept-Encoding", ae)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Header().Get("Content-Encoding") != "" || rec.Body.String() != js {
			t.Errorf("Accept-Encoding %q: %v", ae, rec.Header())
		}
	}
	req = httptest.NewRequest("GET", "/assets/big-X1.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Range", "bytes=0-9")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 206 || rec.Body.String() != js[:10] {
		t.Errorf("range: %d %q", rec.Code, rec.Body.String())
	}
	// Small files are not worth it.
	req = httptest.NewRequest("GET", "/assets/tiny-X2.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "" || rec.Body.String() != "1" {
		t.Errorf("tiny file: %v %q", rec.Header(), rec.Body.String())
	}
}
