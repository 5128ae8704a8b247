package natsnodes_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// A 3-server cluster with an R3 stream: one server is shut down while the
// sink publishes; the stream ends with every packet once.
func TestJetStreamClusterLosesAServer(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	srvs, urls := startCluster(t, 3)
	url := strings.Join(urls, ",")
	const n = 3000
	g := yamlf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: 0.001, count: %d}
  - id: js
    kind: sink
    plugin: schnitzel_stream.nodes.nats:JetStreamSink
    config: {url: "%s", subject: "r3.x", stream: R3, create_stream: true, replicas: 3, timeout_sec: 2, retry_backoff_sec: 0.1, reconnect_wait_sec: 0.1}
edges:
  - {from: src, to: js}
`, n, url)
	done := make(chan error, 1)
	var run *plugintest.GraphRun
	go func() {
		r, err := plugintest.TryRunGraph(context.Background(), g, registry())
		run = r
		done <- err
	}()
	_, js := natstest.Client(t, url)
	poll.Until(t, 60*time.Second, "the R3 stream to fill a little", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "R3")
		return err == nil && s.CachedInfo().State.Msgs >= 300
	})
	// Take down the server the stream's leader is on, the hardest case.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s, err := js.Stream(ctx, "R3")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	for _, srv := range srvs {
		if srv.Name() == leader {
			srv.Stop()
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("publishing did not finish after losing a server")
	}
	t.Logf("killed %s; retries %d, duplicates %d, reconnects %d", leader, metric(t, run.Report.Metrics, "node.js.retry_total"),
		metric(t, run.Report.Metrics, "node.js.duplicate_total"), metric(t, run.Report.Metrics, "node.js.reconnects_total"))
	if got := metric(t, run.Report.Metrics, "node.js.published_total"); got != n {
		t.Errorf("published_total = %d, want %d", got, n)
	}
	var got uint64
	poll.Until(t, 30*time.Second, "the stream to report its messages", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "R3")
		if err == nil {
			got = s.CachedInfo().State.Msgs
		}
		return err == nil
	})
	if got != n {
		t.Errorf("R3 stream holds %d, want %d", got, n)
	}
}

// startCluster runs n JetStream servers clustered on loopback and waits for
// a meta leader.
func startCluster(tb testing.TB, n int) ([]*natstest.Server, []string) {
	tb.Helper()
	var cports []int
	var routes, urls []string
	for range n {
		p, err := natstest.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		cports = append(cports, p)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	srvs := make([]*natstest.Server, n)
	for i := range n {
		srvs[i] = natstest.Start(tb, natstest.Options{Name: fmt.Sprintf("s%d", i), ClusterName: "c", ClusterPort: cports[i], Routes: routes})
		urls = append(urls, srvs[i].URL())
	}
	poll.Until(tb, 30*time.Second, "a JetStream meta leader", func() bool {
		for _, s := range srvs {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return srvs, urls
}
