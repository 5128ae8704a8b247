// Package console serves the web console: the single-page app built from
// web/ (npm run build writes it to dist/, committed), embedded in the
// binary so that `go build` on a fresh clone includes it.
//
// The files hold no data (every API call needs the session), so they are
// served without auth; the API server still applies its Host check before
// this handler runs.
package console

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// CSP allows only this origin: no inline scripts, no CDN, no frames. Inline
// styles stay allowed because the canvas library positions nodes with
// style attributes.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// reserved reports whether p belongs to the API and never to the console:
// an unknown /api/... path must stay a JSON 404, not the app's page.
func reserved(p string) bool {
	for _, pre := range []string{"/api/", "/metrics", "/login", "/logout"} {
		if p == strings.TrimSuffix(pre, "/") || strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// Handler serves dist: exact files, index.html for any other path (the
// app routes on the client), 404 for reserved paths.
func Handler() http.Handler { return newHandler(dist) }

func newHandler(fsys fs.FS) http.Handler {
	sub, err := fs.Sub(fsys, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees dist
	}
	index, _ := fs.ReadFile(sub, "index.html")
	var gz gzipCache
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		if reserved(p) {
			http.NotFound(w, r)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+p), "/")
		if name != "" && name != "index.html" {
			if b, err := fs.ReadFile(sub, name); err == nil {
				if strings.HasPrefix(name, "assets/") {
					// Vite names assets by content hash: a new build is
					// a new name.
					h.Set("Cache-Control", "public, max-age=31536000, immutable")
				} else {
					h.Set("Cache-Control", "no-cache")
				}
				if gz.serve(w, r, name, b) {
					return
				}
				http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
				return
			}
			if strings.HasPrefix(name, "assets/") {
				// A missing asset is a 404, not the app's page: a stale
				// tab asking for an old chunk must fail visibly.
				h.Set("Cache-Control", "no-cache")
				http.NotFound(w, r)
				return
			}
		}
		if index == nil {
			http.Error(w, "console not built: run npm ci && npm run build in web/", http.StatusNotFound)
			return
		}
		// index.html names the current hashed assets: always revalidate.
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", "text/html; charset=utf-8")
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
	})
}

// gzipCache compresses the text assets once, on first request: the editor
// chunk is ~450 KB of JavaScript, ~150 KB gzipped, which matters to a
// tablet on a site's Wi-Fi.
type gzipCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func compressible(name string) bool {
	switch path.Ext(name) {
	case ".js", ".css", ".svg", ".json", ".txt", ".map":
		return true
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}

// serve answers a GET or HEAD with the gzipped file when the client takes
// it (no ranges: they would be of the encoded bytes). It reports whether
// it answered.
func (c *gzipCache) serve(w http.ResponseWriter, r *http.Request, name string, b []byte) bool {
	if !compressible(name) || len(b) < 1024 {
		return false
	}
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r) || r.Header.Get("Range") != "" {
		return false
	}
	c.mu.Lock()
	z, ok := c.m[name]
	if !ok {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		z = buf.Bytes()
		if c.m == nil {
			c.m = map[string][]byte{}
		}
		c.m[name] = z
	}
	c.mu.Unlock()
	h := w.Header()
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("Content-Encoding", "gzip")
	h.Set("Content-Length", strconv.Itoa(len(z)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(z)
	}
	return true
}
