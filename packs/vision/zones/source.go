package zones

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// FileSuffixOK reports whether path has a suffix the file source reads
// (.json, .yaml, .yml in any case).
func FileSuffixOK(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// LoadFile reads a zone file: JSON or YAML by suffix, holding a list of
// zones or a mapping {zones: [...]}. Errors name the file and the zone.
// A mapping without a zones list, or other content, yields no zones (as
// upstream). A missing file is an error wrapping fs.ErrNotExist.
func LoadFile(path string, log *slog.Logger) ([]Zone, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("zones file %s: %w", path, err)
	}
	var doc any
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var raw any
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("zones file %s: invalid JSON: %w", path, err)
		}
		doc = jsonLike(raw)
	case ".yaml", ".yml":
		var raw any
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("zones file %s: invalid YAML: %w", path, err)
		}
		doc = jsonLike(raw)
	default:
		return nil, fmt.Errorf("zones file %s: unsupported suffix (want .json, .yaml or .yml)", path)
	}
	if m, ok := doc.(*packet.Map); ok {
		doc, _ = m.Get("zones")
	}
	if _, ok := doc.([]any); !ok {
		return nil, nil
	}
	zs, err := Parse(doc, log.With("zones_file", path))
	if err != nil {
		return nil, fmt.Errorf("zones file %s: %w", path, err)
	}
	return zs, nil
}

// jsonLike turns decoded YAML (go-yaml) or JSON (encoding/json with
// UseNumber) values into packet's JSON-like values.
func jsonLike(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := packet.NewMap(len(x))
		for k, e := range x {
			m.Set(k, jsonLike(e))
		}
		return m
	case map[any]any:
		m := packet.NewMap(len(x))
		for k, e := range x {
			m.Set(fmt.Sprint(k), jsonLike(e))
		}
		return m
	case []any:
		for i := range x {
			x[i] = jsonLike(x[i])
		}
		return x
	case int:
		return int64(x)
	case uint64:
		if x > 1<<63-1 {
			return new(big.Int).SetUint64(x)
		}
		return int64(x)
	case float32:
		return float64(x)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// File is the file zone source: the file is read when first needed and
// again once the cache TTL has passed (every call when TTL ≤ 0), but only
// parsed again when its size or modification time changed. A reload that
// fails keeps the previous zones and logs why.
type File struct {
	Path string
	TTL  time.Duration
	Log  *slog.Logger
	Now  func() time.Time // nil: time.Now

	mu      sync.Mutex
	zones   []Zone
	loaded  bool
	checked time.Time
	size    int64
	mtime   time.Time
	warned  bool
}

// Load reads the file now. It is called at start so that a malformed file
// stops the graph before any event: the error names the file and zone. A
// missing file is not an error (no zones, as upstream), only a warning.
func (f *File) Load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reload(true)
}

// Zones returns the current zones.
func (f *File) Zones() []Zone {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if !f.loaded || f.TTL <= 0 || now.Sub(f.checked) > f.TTL {
		_ = f.reload(false)
	}
	return f.zones
}

func (f *File) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *File) reload(strict bool) error {
	if f.Log == nil {
		f.Log = slog.New(slog.DiscardHandler)
	}
	f.checked = f.now()
	st, err := os.Stat(f.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if !f.warned {
				f.Log.Warn("zones file not found; no zones until it appears", "zones_file", f.Path)
				f.warned = true
			}
			f.zones, f.loaded, f.size, f.mtime = nil, true, -1, time.Time{}
			return nil
		}
		return f.fail(strict, err)
	}
	if f.loaded && st.Size() == f.size && st.ModTime().Equal(f.mtime) {
		return nil
	}
	zs, err := LoadFile(f.Path, f.Log)
	if err != nil {
		return f.fail(strict, err)
	}
	f.zones, f.loaded, f.size, f.mtime, f.warned = zs, true, st.Size(), st.ModTime(), false
	return nil
}

func (f *File) fail(strict bool, err error) error {
	if strict {
		return err
	}
	f.Log.Warn("zones file reload failed; keeping the previous zones", "error", err)
	f.loaded = true
	return err
}

// APIConfig is the api zone source's settings (upstream's api_cfg /
// zones.api keys).
type APIConfig struct {
	BaseURL          string
	PathTemplate     string // {site_id} and {camera_id} are replaced
	SiteID, CameraID string
	Timeout          time.Duration
	TTL              time.Duration // cache_ttl_sec; ≤ 0 refreshes whenever no fetch is in flight
	ErrorBackoff     time.Duration // pause after MaxFailures consecutive failures; 0 = none
	MaxFailures      int
}

// URL returns the GET address: base URL without trailing slashes plus the
// template with {site_id} and {camera_id} substituted (path-escaped).
func (c APIConfig) URL() string {
	p := strings.ReplaceAll(c.PathTemplate, "{site_id}", url.PathEscape(c.SiteID))
	p = strings.ReplaceAll(p, "{camera_id}", url.PathEscape(c.CameraID))
	return strings.TrimRight(c.BaseURL, "/") + p
}

// API is the api zone source. Zones never blocks: it returns the last
// fetched list (possibly stale, empty before the first success) and, when
// the cache is not fresh and no failure backoff is running, starts one
// background fetch (single flight).
type API struct {
	Cfg    APIConfig
	Client *http.Client // nil: a client with Cfg.Timeout
	Log    *slog.Logger
	Now    func() time.Time

	mu         sync.Mutex
	zones      []Zone
	fetched    time.Time
	have       bool
	failures   int
	errorUntil time.Time
	inflight   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start prepares background fetches and makes one synchronous fetch
// (bounded by the timeout) so that the first events already see the zones
// when the API is reachable; a failure is logged, not returned.
func (a *API) Start(ctx context.Context) {
	a.mu.Lock()
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.mu.Unlock()
	zs, err := a.fetch(ctx)
	a.record(zs, err)
}

// Close stops a running fetch and waits for it.
func (a *API) Close() {
	a.mu.Lock()
	if a.cancel != nil {
		a.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// Zones returns the cached zones and triggers a refresh when due.
func (a *API) Zones() []Zone {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	fresh := a.have && a.Cfg.TTL > 0 && now.Sub(a.fetched) <= a.Cfg.TTL
	if !fresh && !a.inflight && !now.Before(a.errorUntil) && a.ctx != nil && a.ctx.Err() == nil {
		a.inflight = true
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			zs, err := a.fetch(a.ctx)
			a.record(zs, err)
		}()
	}
	return a.zones
}

// Wait blocks until no background fetch is running (tests).
func (a *API) Wait() { a.wg.Wait() }

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *API) record(zs []Zone, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight = false
	if err == nil {
		a.zones, a.have, a.fetched, a.failures, a.errorUntil = zs, true, a.now(), 0, time.Time{}
		return
	}
	if a.ctx != nil && a.ctx.Err() != nil {
		return // closing: not a failure of the API
	}
	a.Log.Warn("zones fetch failed", "error_code", "ZONES_FETCH_FAILED", "url", redact.URL(a.Cfg.URL()), "error", redact.Text(err.Error()))
	a.failures++
	if a.Cfg.ErrorBackoff <= 0 {
		return
	}
	if a.failures >= max(1, a.Cfg.MaxFailures) {
		a.errorUntil = a.now().Add(a.Cfg.ErrorBackoff)
		a.failures = 0
	}
}

// fetch GETs the zone list. Anything but a 2xx JSON list of valid zones is
// a failure.
func (a *API) fetch(ctx context.Context) ([]Zone, error) {
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: a.Cfg.Timeout}
	}
	if a.Cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Cfg.Timeout)
		defer cancel()
	}
	u := a.Cfg.URL()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	doc := jsonLike(raw)
	if _, ok := doc.([]any); !ok {
		return nil, fmt.Errorf("expected a JSON list of zones, got %s", kindOf(doc))
	}
	return Parse(doc, a.Log)
}
