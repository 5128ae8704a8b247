//go:build !windows

package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
	"github.com/schnitzel-stream/schnitzel/packet"
)

// natsWorkerGraph: a JetStream worker that commits what it takes to its
// own SQLite queue (so the message is acked after the commit) and prints
// each committed packet.
const natsWorkerGraph = `version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.nats:JetStreamSource
    config:
      url: ${oc.env:NATS_URL}
      stream: WORK
      durable: workers
      follow: %v
      batch: %d
      ack_wait_sec: 2
      idle_wait_sec: 0.2
  - id: q
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config: {path: q.sqlite3, forward: true, max_rows: %d, overflow: block}
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config: {prefix: "GOT "}
edges:
  - {from: src, to: q}
  - {from: q, to: out}
`

// natsWorker is one worker process.
type natsWorker struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	errb bytes.Buffer
	done chan struct{}
}

func startNatsWorker(t *testing.T, url string, follow bool, batch, maxRows int) *natsWorker {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g.yaml"), fmt.Appendf(nil, natsWorkerGraph, follow, batch, maxRows), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &natsWorker{done: make(chan struct{})}
	w.cmd = exec.Command(bin, "--graph", "g.yaml", "--report-json")
	w.cmd.Dir = dir
	w.cmd.Env = append(os.Environ(), "NATS_URL="+url)
	w.cmd.Stderr = &w.errb
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			w.mu.Lock()
			w.out.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
		}
		w.cmd.Wait()
	}()
	t.Cleanup(func() { w.cmd.Process.Kill(); <-w.done })
	return w
}

func (w *natsWorker) stdout() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

func (w *natsWorker) ids(t *testing.T) []string {
	var ids []string
	for _, l := range strings.Split(w.stdout(), "\n") {
		rest, ok := strings.CutPrefix(l, "GOT ")
		if !ok {
			continue
		}
		v, err := packet.DecodeJSON([]byte(rest))
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		id, _ := v.(*packet.Map).GetString("packet_id")
		ids = append(ids, id)
	}
	return ids
}

func (w *natsWorker) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(d):
		t.Fatalf("worker did not end within %v; stderr:\n%s", d, w.errb.String())
	}
}

var redeliveredRE = regexp.MustCompile(`"node\.src\.redelivered_total":\s*(\d+)`)

// TestNatsWorkersShareAndSurviveKill: three worker processes on one
// durable. The first takes its share but cannot finish committing it (its
// queue is full) and is killed with SIGKILL; the two others then get its
// unacked messages after ack_wait. Every message is committed by one of
// the survivors, each got a share.
func TestNatsWorkersShareAndSurviveKill(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSource")
	srv := natstest.Start(t, natstest.Options{})
	_, js := natstest.Client(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}}); err != nil {
		t.Fatal(err)
	}
	const n = 600
	want := map[string]bool{}
	for i := range n {
		p := packet.New("event", "cam"+strconv.Itoa(i%3), packet.MapOf("i", int64(i)), "", nil)
		want[p.ID] = true
		b, err := packet.AppendPacketJSON(nil, p, packet.JSONOptions{Style: packet.Compact})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync("work."+p.SourceID, b); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publish timed out")
	}
	cons := func() *jetstream.ConsumerInfo {
		c, err := js.Consumer(ctx, "WORK", "workers")
		if err != nil {
			return nil
		}
		info, err := c.Info(ctx)
		if err != nil {
			return nil
		}
		return info
	}

	// The victim: its queue takes 10 rows, then blocks; it holds what it
	// pulled (batch 50) unacked.
	victim := startNatsWorker(t, srv.URL(), true, 50, 10)
	poll.Until(t, 30*time.Second, "the victim to hold unacked messages", func() bool {
		i := cons()
		return i != nil && i.NumAckPending >= 40
	})
	held := cons().NumAckPending
	if err := victim.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-victim.done

	a := startNatsWorker(t, srv.URL(), false, 5, 0)
	b := startNatsWorker(t, srv.URL(), false, 5, 0)
	a.wait(t, 60*time.Second)
	b.wait(t, 60*time.Second)

	got := map[string]int{}
	for _, w := range []*natsWorker{victim, a, b} {
		for _, id := range w.ids(t) {
			got[id]++
		}
	}
	var missing, extra int
	for id := range want {
		if got[id] == 0 {
			missing++
		}
	}
	for id := range got {
		if !want[id] {
			extra++
		}
	}
	if missing > 0 || extra > 0 {
		t.Errorf("%d of %d messages never committed, %d unknown ids", missing, n, extra)
	}
	va, vb, vv := len(a.ids(t)), len(b.ids(t)), len(victim.ids(t))
	if va == 0 || vb == 0 {
		t.Errorf("shares: a %d, b %d: each should have some", va, vb)
	}
	redelivered := 0
	for _, w := range []*natsWorker{a, b} {
		m := redeliveredRE.FindStringSubmatch(w.stdout())
		if m == nil {
			t.Fatalf("no redelivered_total in the report:\n%s\nstderr:\n%s", w.stdout(), w.errb.String())
		}
		v, _ := strconv.Atoi(m[1])
		redelivered += v
	}
	// The victim's batch never finished committing (its queue was full),
	// so nothing it held was acked: all of it comes back.
	if redelivered < int(held) {
		t.Errorf("survivors saw %d redeliveries; the victim held %d unacked", redelivered, held)
	}
	if i := cons(); i == nil || i.NumPending != 0 || i.NumAckPending != 0 {
		t.Errorf("consumer not drained: %+v", i)
	}
	t.Logf("victim held %d (committed %d), shares a=%d b=%d, redelivered %d", held, vv, va, vb, redelivered)
}

// TestNatsForwardKilledAndRestarted runs the shipped example pair:
// sf_producer_v2 fills the local queue, nats_forward_v2 publishes it to
// JetStream and is killed with SIGKILL mid-stream, then started again.
// The stream ends with every packet exactly once (replays are deduplicated
// by Nats-Msg-Id) and the queue is drained.
func TestNatsForwardKilledAndRestarted(t *testing.T) {
	requirePlugins(t, "schnitzel_stream.nodes.nats:JetStreamSink")
	srv := natstest.Start(t, natstest.Options{})
	dir := t.TempDir()
	const n = 5000
	r := run(t, dir, []string{"SF_COUNT=" + strconv.Itoa(n), "SF_INTERVAL_SEC=0"}, "--graph", filepath.Join(root, "configs", "graphs", "sf_producer_v2.yaml"))
	if r.code != 0 {
		t.Fatalf("producer: %d\n%s", r.code, r.stderr)
	}
	_, js := natstest.Client(t, srv.URL())
	count := func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "EVENTS")
		if err != nil {
			return 0
		}
		return s.CachedInfo().State.Msgs
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--graph", filepath.Join(root, "configs", "graphs", "nats_forward_v2.yaml"))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NATS_URL="+srv.URL())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	first := start()
	poll.Until(t, 60*time.Second, "the forwarder to publish some", func() bool { return count() >= 500 })
	first.Process.Signal(os.Kill)
	first.Wait()
	killedAt := count()
	second := start()
	poll.Until(t, 60*time.Second, "the stream to hold every packet", func() bool { return count() >= n })
	// Stop it gracefully: whatever it still replays must not add messages.
	second.Process.Signal(syscall.SIGTERM)
	second.Wait()
	if got := count(); got != n {
		t.Errorf("stream holds %d messages, want %d", got, n)
	}
	st := run(t, dir, nil, "queue", "stats", "--json", "--path", "outputs/queues/sf.sqlite3")
	if !regexp.MustCompile(`"rows":\s*0,`).MatchString(st.stdout) || !regexp.MustCompile(`"dead":\s*0,`).MatchString(st.stdout) {
		t.Errorf("local queue not drained (or dead letters):\n%s%s", st.stdout, st.stderr)
	}
	t.Logf("killed at %d of %d", killedAt, n)
}
