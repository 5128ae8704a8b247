package zones

import (
	"context"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ids(zs []Zone) string {
	var b []string
	for _, z := range zs {
		b = append(b, fmt.Sprint(z.ID))
	}
	return strings.Join(b, ",")
}

func TestLoadFileFormats(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		file, body, want string
	}{
		{"list.json", `[{"zone_id":"Z1","polygon":[[0,0],[10,0],[10,10],[0,10]]}]`, "Z1"},
		{"wrapped.json", `{"zones":[{"zone_id":"Z2","polygon":[[0,0],[1,0],[1,1]]}]}`, "Z2"},
		{"other.json", `{"zonez":[]}`, ""},
		{"scalar.json", `42`, ""},
		{"list.yaml", "- zone_id: Y1\n  polygon: [[0, 0], [10, 0], [10, 10]]\n", "Y1"},
		{"wrapped.YML", "zones:\n  - zone_id: Y2\n    enabled: false\n    polygon:\n      - [0, 0]\n      - [1.5, 0]\n      - [1, 1]\n", "Y2"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.file)
		write(t, p, c.body)
		zs, err := LoadFile(p, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if got := ids(zs); got != c.want {
			t.Errorf("%s: zones %q, want %q", c.file, got, c.want)
		}
	}
	zs, _ := LoadFile(filepath.Join(dir, "wrapped.YML"), nil)
	if zs[0].Enabled || zs[0].Polygon[1] != (Point{1.5, 0}) {
		t.Errorf("yaml zone decoded as %+v", zs[0])
	}
}

func TestLoadFileErrorsNameFileAndZone(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		file, body string
		want       []string
	}{
		{"broken.json", `[{"zone_id": "Z1", `, []string{"broken.json", "invalid JSON"}},
		{"broken.yaml", "zones: [\n", []string{"broken.yaml", "invalid YAML"}},
		{"vertex.json", `[{"zone_id":"A"},{"zone_id":"GATE","polygon":[[0,0],[1],[1,1]]}]`,
			[]string{"vertex.json", "zones[1] (zone_id GATE): polygon[1]"}},
		{"coord.yaml", "- zone_id: DOCK\n  polygon: [[0, 0], [x, 0], [1, 1]]\n",
			[]string{"coord.yaml", "zone_id DOCK", "coordinates must be numbers"}},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.file)
		write(t, p, c.body)
		_, err := LoadFile(p, nil)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err %v, want it to contain %q", c.file, err, w)
			}
		}
	}
}

func TestFileSourceTTLReloadAndMissing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "zones.json")
	write(t, p, `[{"zone_id":"Z0","polygon":[[0,0],[1,0],[1,1]]}]`)
	clk := &fakeClock{t: time.Unix(2000, 0)}
	f := &File{Path: p, TTL: 30 * time.Second, Now: clk.Now}
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.Zones()); got != "Z0" {
		t.Fatalf("first load %q", got)
	}
	// Within the TTL the file is not looked at.
	write(t, p, `[{"zone_id":"Z1","polygon":[[0,0],[1,0],[1,1]]}, {"zone_id":"Z1b","polygon":[[0,0],[1,0],[1,1]]}]`)
	clk.Add(5 * time.Second)
	if got := ids(f.Zones()); got != "Z0" {
		t.Fatalf("within TTL %q", got)
	}
	clk.Add(26 * time.Second)
	if got := ids(f.Zones()); got != "Z1,Z1b" {
		t.Fatalf("after TTL %q", got)
	}
	// A broken edit keeps the previous zones.
	write(t, p, `[{"zone_id":"Z2","polygon":[[0,0],[1],[1,1]]}]`)
	clk.Add(31 * time.Second)
	if got := ids(f.Zones()); got != "Z1,Z1b" {
		t.Fatalf("after broken edit %q", got)
	}
	// A missing file means no zones, not an error.
	os.Remove(p)
	clk.Add(31 * time.Second)
	if got := ids(f.Zones()); got != "" {
		t.Fatalf("after removal %q", got)
	}
	missing := &File{Path: filepath.Join(dir, "none.json"), TTL: time.Second}
	if err := missing.Load(); err != nil || len(missing.Zones()) != 0 {
		t.Fatalf("missing file: %v", err)
	}
	// Start-up is strict.
	write(t, p, `{`)
	if err := (&File{Path: p}).Load(); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("malformed file at start: %v", err)
	}
}

// zoneServer answers with the handlers in turn (the last one repeats).
func zoneServer(t *testing.T, handlers ...http.HandlerFunc) (*httptest.Server, *atomic.Int64, *atomic.Value) {
	var n atomic.Int64
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		path.Store(r.URL.Path)
		handlers[min(i, len(handlers)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n, &path
}

func okZones(id string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `[{"zone_id":%q,"enabled":true,"polygon":[[0,0],[100,0],[100,100],[0,100]]}]`, id)
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func TestAPIURL(t *testing.T) {
	c := APIConfig{BaseURL: "http://backend:8080//", PathTemplate: "/api/sites/{site_id}/cameras/{camera_id}/zones", SiteID: "S001", CameraID: "cam 01/x"}
	if got := c.URL(); got != "http://backend:8080/api/sites/S001/cameras/cam%2001%2Fx/zones" {
		t.Fatalf("URL %s", got)
	}
}

func TestAPIStartFetchThenStaleOnError(t *testing.T) {
	srv, calls, path := zoneServer(t, okZones("Z1"), status(500))
	clk := &fakeClock{t: time.Unix(1000, 0)}
	a := &API{Now: clk.Now, Cfg: APIConfig{BaseURL: srv.URL, PathTemplate: "/api/sites/{site_id}/cameras/{camera_id}/zones",
		SiteID: "S001", CameraID: "cam01", Timeout: time.Second, TTL: 30 * time.Second, ErrorBackoff: 5 * time.Second, MaxFailures: 2}}
	a.Start(context.Background())
	defer a.Close()
	if got := ids(a.Zones()); got != "Z1" {
		t.Fatalf("zones after start %q", got)
	}
	if p := path.Load(); p != "/api/sites/S001/cameras/cam01/zones" {
		t.Fatalf("path %v", p)
	}
	// Fresh: no fetch.
	clk.Add(10 * time.Second)
	a.Zones()
	a.Wait()
	if calls.Load() != 1 {
		t.Fatalf("fetched within TTL: %d calls", calls.Load())
	}
	// Stale: the old zones are served while a refresh fails in the background.
	clk.Add(25 * time.Second)
	for i := 0; i < 2; i++ {
		if got := ids(a.Zones()); got != "Z1" {
			t.Fatalf("stale zones %q", got)
		}
		a.Wait()
	}
	if calls.Load() != 3 {
		t.Fatalf("calls %d, want 3", calls.Load())
	}
	// Two failures started the backoff: no fetch until it has passed.
	a.Zones()
	a.Wait()
	if calls.Load() != 3 {
		t.Fatalf("fetched during backoff: %d calls", calls.Load())
	}
	clk.Add(5 * time.Second)
	a.Zones()
	a.Wait()
	if calls.Load() != 4 {
		t.Fatalf("no fetch after backoff: %d calls", calls.Load())
	}
}

func TestAPIZonesNeverBlock(t *testing.T) {
	release := make(chan struct{})
	srv, calls, _ := zoneServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		okZones("Z1")(w, r)
	})
	a := &API{Cfg: APIConfig{BaseURL: srv.URL, Timeout: 10 * time.Second, TTL: 30 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the start-up fetch gives up at once
	a.Start(ctx)
	defer a.Close()
	start := time.Now()
	for i := 0; i < 100; i++ {
		if zs := a.Zones(); len(zs) != 0 {
			t.Fatal("zones before any fetch succeeded")
		}
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("Zones blocked for %v", el)
	}
	poll.Until(t, 5*time.Second, "the single background fetch to reach the server", func() bool { return calls.Load() >= 1 })
	close(release)
	poll.Until(t, 5*time.Second, "zones", func() bool { return ids(a.Zones()) == "Z1" })
	if calls.Load() != 1 { // the cancelled start-up fetch never connected; one single-flight refresh
		t.Fatalf("calls %d, want 1", calls.Load())
	}
}

func TestAPIRejectsBadBodies(t *testing.T) {
	bodies := map[string]string{
		"not a list": `{"zones": []}`,
		"not json":   `<html>`,
		"bad vertex": `[{"zone_id":"Z","polygon":[[0,0],[1],[1,1]]}]`,
	}
	for name, body := range bodies {
		srv, _, _ := zoneServer(t, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) })
		a := &API{Cfg: APIConfig{BaseURL: srv.URL, Timeout: time.Second, TTL: time.Minute}}
		if _, err := a.fetch(context.Background()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAPITTLZeroStillLoads(t *testing.T) {
	srv, _, _ := zoneServer(t, status(503), okZones("Z5"))
	a := &API{Cfg: APIConfig{BaseURL: srv.URL, Timeout: time.Second, TTL: 0}}
	a.Start(context.Background())
	defer a.Close()
	poll.Until(t, 5*time.Second, "zones with TTL 0", func() bool { return ids(a.Zones()) == "Z5" })
}
