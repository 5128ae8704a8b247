// Command receiver is the far end of scripts/bench-forward: a loopback
// HTTP server that answers every request with 200 after a fixed delay (a
// WAN round trip) and counts requests and packets. A request carries as
// many packets as its Idempotency-Keys header (a JSON array, our batch
// requests) lists, else one.
//
//	receiver -addr 127.0.0.1:0 -delay 20ms -port-file F
//
// GET /stats answers {"requests": R, "packets": P}; /stats?reset=1 also
// zeroes the counters.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	delay := flag.Duration("delay", 0, "wait before answering each request")
	portFile := flag.String("port-file", "", "write the listening port here once ready")
	flag.Parse()

	var requests, packets atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		st := map[string]int64{"requests": requests.Load(), "packets": packets.Load()}
		if r.URL.Query().Get("reset") != "" {
			requests.Store(0)
			packets.Store(0)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := int64(1)
		if h := r.Header.Get("Idempotency-Keys"); h != "" {
			var keys []string
			if err := json.Unmarshal([]byte(h), &keys); err != nil {
				http.Error(w, "bad Idempotency-Keys", http.StatusBadRequest)
				return
			}
			n = int64(len(keys))
		}
		if *delay > 0 {
			time.Sleep(*delay)
		}
		requests.Add(1)
		packets.Add(n)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *portFile != "" {
		port := l.Addr().(*net.TCPAddr).Port
		if err := os.WriteFile(*portFile, []byte(fmt.Sprint(port)), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Fatal(http.Serve(l, mux))
}
