package ionodes

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// TestHTTPSinkMetaURLMasked: the URL a forwarded packet carries in
// meta.http.url has its userinfo and its token masked (the leak of issue
// 18: only the password used to be), while the receiver still gets both.
func TestHTTPSinkMetaURLMasked(t *testing.T) {
	var mu sync.Mutex
	var gotQuery, gotUser, gotPass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotQuery = r.URL.RawQuery
		gotUser, gotPass, _ = r.BasicAuth()
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	raw := "http://ops:hunter2@" + host + "/events?token=abc123&api_key=k9&x=1"
	reg := plugin.NewRegistry()
	Register(reg)
	n := plugintest.Build(t, reg, "schnitzel_stream.nodes.http:HttpJsonSink", "node", packet.MapOf("url", raw, "forward", true))
	plugintest.Start(t, n)
	c := &plugintest.Collector{}
	if err := plugintest.ProcessInto(n, c, packet.New("e", "s", packet.MapOf("a", int64(1)), "", nil)); err != nil {
		t.Fatalf("process: %v", err)
	}
	plugintest.Close(t, n)
	mu.Lock()
	if gotQuery != "token=abc123&api_key=k9&x=1" || gotUser != "ops" || gotPass != "hunter2" {
		t.Errorf("receiver got query %q, basic auth %q:%q; want the real secrets", gotQuery, gotUser, gotPass)
	}
	mu.Unlock()
	out := c.Packets()
	if len(out) != 1 {
		t.Fatalf("forwarded %d packets, want 1", len(out))
	}
	h, _ := out[0].Meta.Get("http")
	hm, _ := h.(*packet.Map)
	u, _ := hm.GetString("url")
	if want := "http://***:***@" + host + "/events?token=***&api_key=***&x=1"; u != want {
		t.Errorf("meta.http.url = %q, want %q", u, want)
	}
	if want := maskURL(raw); u != want {
		t.Errorf("meta.http.url = %q differs from maskURL %q", u, want)
	}
}
