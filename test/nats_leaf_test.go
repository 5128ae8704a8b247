//go:build !windows

package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// leafProc is one schnitzel process of the leaf test.
type leafProc struct {
	name string
	cmd  *exec.Cmd
	errb logbuf.Buffer
	done chan struct{}
	err  error
}

func startLeafProc(t *testing.T, name, dir string, env []string, args ...string) *leafProc {
	t.Helper()
	p := &leafProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, p.errb.String())
		}
	})
	return p
}

func (p *leafProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitListening waits for `nats serve` to say it is up.
func (p *leafProc) waitListening(t *testing.T) {
	t.Helper()
	poll.Until(t, 30*time.Second, p.name+" to listen", func() bool {
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.errb.String())
		}
		return strings.Contains(p.errb.String(), "nats serve: listening on")
	})
}

// freeLoopbackPort returns a port that was free a moment ago: the hub must
// come back on the same ports, so they cannot be 0.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// streamCount is a stream's message count on the server at url; -1 when
// it cannot be read (server down, stream not there yet).
func streamCount(js jetstream.JetStream, name string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return -1
	}
	return int64(s.CachedInfo().State.Msgs)
}

// TestNatsLeafEdgeToHubSurvivesHubKill runs the shipped edge-to-hub example:
// a hub (`nats serve --leaf-listen --source`), an edge server joined to it as
// a leaf, and configs/nats/edge_publish_v2.yaml publishing N packets into the
// edge's local stream. The hub is killed with SIGKILL mid-stream; the edge
// graph must still finish (its stream is local), and the hub, restarted on
// the same store and ports, must end with each of the N packets exactly once.
func TestNatsLeafEdgeToHubSurvivesHubKill(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSink", "schnitzel_stream.nodes.dev:TickerSource")
	const n = 2000
	dir := t.TempDir()
	hubPort, leafPort, edgePort := freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t)
	hubURL := fmt.Sprintf("nats://127.0.0.1:%d", hubPort)
	edgeURL := fmt.Sprintf("nats://127.0.0.1:%d", edgePort)
	hubArgs := []string{"nats", "serve", "--domain", "hub", "--listen", "127.0.0.1:" + strconv.Itoa(hubPort),
		"--store", filepath.Join(dir, "hub-store"), "--leaf-listen", "127.0.0.1:" + strconv.Itoa(leafPort),
		"--source", "HUB_EVENTS=EDGE_EVENTS@edge"}
	hub := startLeafProc(t, "hub", dir, nil, hubArgs...)
	hub.waitListening(t)
	edge := startLeafProc(t, "edge server", dir, nil, "nats", "serve", "--domain", "edge",
		"--listen", "127.0.0.1:"+strconv.Itoa(edgePort), "--store", filepath.Join(dir, "edge-store"),
		"--leaf-remote", fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort))
	edge.waitListening(t)

	hnc, err := nats.Connect(hubURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	hjs, _ := jetstream.New(hnc)
	enc, err := nats.Connect(edgeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ejs, _ := jetstream.New(enc)
	hubCount := func() int64 { return streamCount(hjs, "HUB_EVENTS") }
	edgeCount := func() int64 { return streamCount(ejs, "EDGE_EVENTS") }

	// About 3 ms a packet: the graph runs ~6 s, long enough to kill the hub
	// while it runs.
	graph := startLeafProc(t, "edge graph", dir,
		[]string{"EDGE_COUNT=" + strconv.Itoa(n), "EDGE_INTERVAL_SEC=0.003", "EDGE_NATS_URL=" + edgeURL},
		"--graph", filepath.Join(root, "configs", "nats", "edge_publish_v2.yaml"))
	poll.Until(t, 60*time.Second, "the hub to source some of the edge's packets", func() bool {
		if graph.exited() {
			t.Fatalf("edge graph ended before the hub had 200 packets: %v", graph.err)
		}
		return hubCount() >= 200
	})
	hubAtKill := hubCount()
	if err := hub.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-hub.done
	killedEdge := edgeCount()
	if killedEdge >= n {
		t.Fatalf("the edge had all %d packets when the hub was killed: not mid-stream", n)
	}
	// With the hub gone the edge graph still publishes to its local stream
	// and finishes.
	poll.UntilProgress(t, 30*time.Second, "the edge graph to publish everything with the hub down",
		edgeCount, func() bool { return graph.exited() })
	if graph.err != nil {
		t.Fatalf("edge graph: %v\n%s", graph.err, graph.errb.String())
	}
	if got := edgeCount(); got != n {
		t.Fatalf("edge stream holds %d, want %d", got, n)
	}

	hub = startLeafProc(t, "hub (restarted)", dir, nil, hubArgs...)
	hub.waitListening(t)
	back := time.Now()
	atRestart := hubCount()
	// nats-server retries a failed source setup with a backoff (5 s times
	// twice the failures, up to 2 min) and checks sources every 10 s: a hub
	// that starts before the leaf is back may stand still that long.
	poll.UntilProgress(t, 150*time.Second, "the hub stream to catch up with the edge",
		hubCount, func() bool { return hubCount() >= n })
	caughtUp := time.Since(back)

	// The source reports no lag once it has read the edge stream to its end:
	// nothing more can come, so the count is final.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var st jetstream.Stream
	poll.Until(t, 30*time.Second, "the hub's source to report no lag", func() bool {
		s, err := hjs.Stream(ctx, "HUB_EVENTS")
		if err != nil {
			return false
		}
		st = s
		src := s.CachedInfo().Sources
		return len(src) == 1 && src[0].Lag == 0 && src[0].Error == nil
	})
	if got := st.CachedInfo().State.Msgs; got != n {
		t.Errorf("hub stream holds %d messages, want %d", got, n)
	}
	ids := map[string]bool{}
	seqs := map[int64]bool{}
	last := st.CachedInfo().State.LastSeq
	for seq := st.CachedInfo().State.FirstSeq; seq <= last && seq > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("hub message %d: %v", seq, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == "" || ids[id] {
			t.Fatalf("hub message %d: Nats-Msg-Id %q missing or repeated", seq, id)
		}
		ids[id] = true
		var body struct {
			PacketID string `json:"packet_id"`
			Payload  struct {
				Seq int64 `json:"seq"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatalf("hub message %d: %v", seq, err)
		}
		if body.PacketID != id || seqs[body.Payload.Seq] || body.Payload.Seq < 0 || body.Payload.Seq >= n {
			t.Fatalf("hub message %d: packet_id %q (header %q), seq %d repeated or out of range", seq, body.PacketID, id, body.Payload.Seq)
		}
		seqs[body.Payload.Seq] = true
	}
	if len(ids) != n || len(seqs) != n {
		t.Errorf("hub stream has %d distinct ids and %d distinct seqs, want %d", len(ids), len(seqs), n)
	}
	t.Logf("hub killed with %d sourced (edge had %d of %d); hub had %d after its restart; the backlog of %d reached it %v after it came back",
		hubAtKill, killedEdge, n, atRestart, n-max(atRestart, 0), caughtUp.Round(time.Millisecond))
}
