// Command nats measures the JetStream nodes against plain nats.go on the
// same embedded server (each client in its own process) (file storage in a temp dir, loopback): a plain
// async publisher vs JetStreamSink, a plain pull consumer with ack vs
// JetStreamSource, side by side in one run, and prints the ratios.
//
// Usage: go run ./bench/nats -bin path/to/schnitzel [-n 200000]
// (scripts/bench-nats builds the binary and runs this).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/packet"
)

const pubGraph = `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: 0, count: %d, kind: tick, source_id: bench}
  - id: js
    kind: sink
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config: {url: %s, subject: "%s.{source_id}", stream: %s, max_pending: %d}
edges:
  - {from: src, to: js}
`

const subGraph = `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.nats:JetStreamSource
    config: {url: %s, stream: %s, durable: bench, follow: false, batch: %d, max_ack_pending: 10000, idle_wait_sec: 0.05}
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:Identity
edges:
  - {from: src, to: out}
`

func main() {
	bin := flag.String("bin", "", "schnitzel binary")
	rawMode := flag.String("raw", "", "internal: run the plain nats.go publisher (pub) or consumer (sub) against -url")
	rawURL := flag.String("url", "", "internal: server URL for -raw")
	n := flag.Int("n", 200000, "messages per run")
	window := flag.Int("pending", 256, "async publish window (both publishers)")
	batch := flag.Int("batch", 256, "pull batch (both consumers)")
	flag.Parse()
	if *rawMode != "" {
		if err := raw(*rawURL, *rawMode, *n, *window, *batch); err != nil {
			fmt.Fprintln(os.Stderr, "bench-nats raw:", err)
			os.Exit(1)
		}
		return
	}
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "need -bin")
		os.Exit(2)
	}
	if err := run(*bin, *n, *window, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "bench-nats:", err)
		os.Exit(1)
	}
}

func run(bin string, n, window, batch int) error {
	dir, err := os.MkdirTemp("", "bench-nats-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("server not ready")
	}
	url := srv.ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, s := range []string{"RAW", "SCH"} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{lower(s) + ".>"}, Storage: jetstream.FileStorage}); err != nil {
			return err
		}
	}
	fmt.Printf("machine: %d cores, %s, N=%d, publish window %d, pull batch %d, file storage\n", runtime.NumCPU(), runtime.Version(), n, window, batch)

	// Plain nats.go, in a child process as schnitzel is: the same
	// loopback hop, the same competition for the cores.
	rawPub, err := child(url, "pub", n, window, batch)
	if err != nil {
		return err
	}
	rawSub, err := child(url, "sub", n, window, batch)
	if err != nil {
		return err
	}

	// schnitzel: the built binary, same server.
	schPub, err := graph(bin, dir, "pub.yaml", fmt.Sprintf(pubGraph, n, url, "sch", "SCH", window))
	if err != nil {
		return err
	}
	if got := msgs(ctx, js, "SCH"); got != uint64(n) {
		return fmt.Errorf("SCH holds %d messages, want %d", got, n)
	}
	schSub, err := graph(bin, dir, "sub.yaml", fmt.Sprintf(subGraph, url, "SCH", batch))
	if err != nil {
		return err
	}
	if c, err := js.Consumer(ctx, "SCH", "bench"); err == nil {
		if info, err := c.Info(ctx); err == nil && (info.NumPending != 0 || info.NumAckPending != 0) {
			return fmt.Errorf("schnitzel consumer left %d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("%-36s %10.0f msg/s  (%v)\n", "publish  nats.go PublishMsgAsync", rate(rawPub), rawPub.Round(time.Millisecond))
	fmt.Printf("%-36s %10.0f msg/s  (%v)  ratio %.2f\n", "publish  schnitzel JetStreamSink", rate(schPub), schPub.Round(time.Millisecond), rawPub.Seconds()/schPub.Seconds())
	fmt.Printf("%-36s %10.0f msg/s  (%v)\n", "consume  nats.go pull + Ack", rate(rawSub), rawSub.Round(time.Millisecond))
	fmt.Printf("%-36s %10.0f msg/s  (%v)  ratio %.2f\n", "consume  schnitzel JetStreamSource", rate(schSub), schSub.Round(time.Millisecond), rawSub.Seconds()/schSub.Seconds())
	e2eRaw, e2eSch := rawPub+rawSub, schPub+schSub
	fmt.Printf("%-36s %10.0f msg/s (raw %.0f)  ratio %.2f\n", "end to end (publish + consume)", rate(e2eSch), rate(e2eRaw), e2eRaw.Seconds()/e2eSch.Seconds())
	return nil
}

// graph runs the binary on a graph and returns its wall time (process
// start included: some ms, small against N messages).
func graph(bin, dir, name, text string) (time.Duration, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, "--graph", path)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return time.Since(t0), nil
}

func msgs(ctx context.Context, js jetstream.JetStream, name string) uint64 {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	return s.CachedInfo().State.Msgs
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// child runs this program as the plain client and returns its wall time.
func child(url, mode string, n, window, batch int) (time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, "-raw", mode, "-url", url, "-n", fmt.Sprint(n), "-pending", fmt.Sprint(window), "-batch", fmt.Sprint(batch))
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("raw %s: %w", mode, err)
	}
	return time.Since(t0), nil
}

// raw is the plain nats.go client: async publish of the packet envelope
// with Nats-Msg-Id (pub), or a pull consumer acking each message (sub).
func raw(url, mode string, n, window, batch int) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return err
	}
	ctx := context.Background()
	if mode == "pub" {
		for i := range n {
			p := &packet.Packet{ID: packet.NewID(), TS: packet.Now(), Kind: "tick", SourceID: "bench",
				Payload: packet.MapOf("seq", int64(i), "ts_unix", float64(time.Now().UnixNano())/1e9)}
			b, err := packet.AppendPacketJSON(nil, p, packet.JSONOptions{Style: packet.Compact, EnsureASCII: true})
			if err != nil {
				return err
			}
			if _, err := js.PublishMsgAsync(&nats.Msg{Subject: "raw.bench", Data: b, Header: nats.Header{"Nats-Msg-Id": []string{p.ID}}}); err != nil {
				return err
			}
		}
		<-js.PublishAsyncComplete()
		return nil
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "RAW", jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10000})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(batch))
	if err != nil {
		return err
	}
	defer it.Stop()
	for range n {
		m, err := it.Next()
		if err != nil {
			return err
		}
		if err := m.Ack(); err != nil {
			return err
		}
	}
	return nc.Flush()
}
