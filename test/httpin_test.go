package test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
)

const ingestGraph = `version: 2
nodes:
  - id: in
    kind: source
    plugin: schnitzel_stream.nodes.http:HttpServerSource
    config:
      listen: 127.0.0.1:0
      token: e2e-token
  - id: queue
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config:
      path: q.sqlite3
edges:
  - {from: in, to: queue}
config: {}
`

var listenAddr = regexp.MustCompile(`msg="http ingest listening".* addr=(\S+)`)

// startIngest runs the binary on ingest.yaml in dir and returns it with
// the address it bound (read from its log).
func startIngest(t *testing.T, dir string) (*exec.Cmd, string, func() string) {
	t.Helper()
	cmd := exec.Command(bin, "--graph", "ingest.yaml")
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &strings.Builder{}
	addr := make(chan string, 1)
	var mu sync.Mutex
	read := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := listenAddr.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addr:
		return cmd, a, read
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no listening line in 30s:\n%s", read())
	}
	return nil, "", nil
}

// TestIngestSurvivesKill9: clients post to a real schnitzel process
// (HttpServerSource -> SqliteQueueSink), which is killed with SIGKILL
// while requests are in flight, several times. Every request that was
// answered 202 is in the queue file afterwards; the file is intact.
func TestIngestSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped under -short")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ingest.yaml"), []byte(ingestGraph), 0o644); err != nil {
		t.Fatal(err)
	}
	qpath := filepath.Join(dir, "q.sqlite3")
	client := &http.Client{Timeout: 15 * time.Second}
	var (
		mu       sync.Mutex
		accepted []string // Idempotency-Keys answered 202
		seq      atomic.Int64
	)
	const kills = 8
	for round := 0; round < kills; round++ {
		cmd, addr, logs := startIngest(t, dir)
		url := "http://" + addr + "/ingest"
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var ok atomic.Int64
		for range 8 {
			wg.Go(func() {
				for ctx.Err() == nil {
					key := fmt.Sprintf("r%d", seq.Add(1))
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"key":"`+key+`"}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer e2e-token")
					req.Header.Set("Idempotency-Key", key)
					resp, err := client.Do(req)
					if err != nil {
						return // killed
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						mu.Lock()
						accepted = append(accepted, key+"#0")
						mu.Unlock()
						ok.Add(1)
					} else if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
						t.Errorf("round %d: status %d", round, resp.StatusCode)
						return
					}
				}
			})
		}
		// Kill once this round has some 202s, with requests in flight.
		want := int64(50 + rand.IntN(200)) // kill at a random point, requests in flight
		if !poll.Wait(30*time.Second, func() bool { return ok.Load() >= want }) {
			cancel()
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: %d requests accepted in 30s:\n%s", round, ok.Load(), logs())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		cancel()
		wg.Wait()
	}

	db, err := sql.Open("sqlite", qpath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored := map[string]bool{}
	rows, err := db.Query(`SELECT idempotency_key FROM packets`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		stored[k] = true
	}
	rows.Close()
	missing := 0
	for _, k := range accepted {
		if !stored[k] {
			missing++
			if missing < 5 {
				t.Errorf("request %s was answered 202 but is not in the queue", k)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d accepted requests lost", missing, len(accepted))
	}
	q, err := queue.Open(qpath, queue.Options{MustExist: true, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if res, err := q.Check(context.Background()); err != nil || len(res) != 1 || res[0] != "ok" {
		t.Fatalf("integrity %v %v", res, err)
	}
	t.Logf("%d kills, %d requests answered 202, %d rows stored", kills, len(accepted), len(stored))
}

// TestIngestStopsCleanly: SIGTERM while clients post: the process exits 0
// within its stop bound, every request got an answer (202, or 503/429 to
// retry), every 202 is in the queue, and the port is closed.
func TestIngestStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ingest.yaml"), []byte(ingestGraph), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, addr, logs := startIngest(t, dir)
	url := "http://" + addr + "/ingest"
	client := &http.Client{Timeout: 15 * time.Second}
	var (
		mu       sync.Mutex
		accepted []string
		ok       atomic.Int64
		seq      atomic.Int64
		stopped  atomic.Bool
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stopped.Load() {
				key := fmt.Sprintf("s%d", seq.Add(1))
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"key":"`+key+`"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer e2e-token")
				req.Header.Set("Idempotency-Key", key)
				resp, err := client.Do(req)
				if err != nil {
					return // the listener closed
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
					mu.Lock()
					accepted = append(accepted, key+"#0")
					mu.Unlock()
					ok.Add(1)
				case http.StatusServiceUnavailable, http.StatusTooManyRequests:
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	poll.Until(t, 30*time.Second, "100 requests accepted", func() bool { return ok.Load() >= 100 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no exit 20s after SIGTERM:\n%s", logs())
	}
	stopped.Store(true)
	wg.Wait()
	db, err := sql.Open("sqlite", filepath.Join(dir, "q.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range accepted {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM packets WHERE idempotency_key = ?`, k).Scan(&n); err != nil || n != 1 {
			t.Fatalf("request %s answered 202: %d rows (%v)", k, n, err)
		}
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("port still open after exit")
	}
	t.Logf("%d requests answered 202 before and during the stop", len(accepted))
}
