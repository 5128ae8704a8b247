package httpin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

type discard struct{}

func (discard) Emit(*packet.Packet) error             { return nil }
func (discard) EmitPort(string, *packet.Packet) error { return nil }

// BenchmarkHandler is the endpoint's own cost per request (no network,
// no graph): auth, read, decode, packets, hand-off to Run.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct {
		name, ctype, body string
	}{
		{"object", "application/json", `{"temp":21.5,"unit":"C","device":"dev-7","tags":["a","b"],"ok":true}`},
		{"ndjson100", "application/x-ndjson", strings.Repeat(`{"temp":21.5,"unit":"C","device":"dev-7","tags":["a","b"],"ok":true}`+"\n", 100)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := Defaults
			c.Token = "tk"
			n, err := newSource(c, plugin.Env{NodeID: "in"})
			if err != nil {
				b.Fatal(err)
			}
			s := n.(*source)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.Run(ctx, discard{}) }()
			var bad atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest(http.MethodPost, "/ingest", strings.NewReader(tc.body))
					r.Header.Set("Content-Type", tc.ctype)
					r.Header.Set("Authorization", "Bearer tk")
					w := httptest.NewRecorder()
					s.ServeHTTP(w, r)
					if w.Code != 200 {
						bad.Add(1)
					}
				}
			})
			cancel()
			<-done
			if bad.Load() > 0 {
				b.Logf("%d of %d not 200", bad.Load(), b.N)
			}
		})
	}
}
