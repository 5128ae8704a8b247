//go:build !windows

package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

const stdinGraph = `version: 2
nodes:
  - id: in
    kind: source
    plugin: schnitzel_stream.nodes.lines:StdinSource
    config: {format: ndjson, on_bad_line: string, source_id: pipe}
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.lines:StdoutSink
    config: {payload_only: true}
edges:
  - {from: in, to: out}
`

// TestStdinToStdout pipes lines through the built binary: it prints one
// JSON line per input line and exits 0 at EOF.
func TestStdinToStdout(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(stdinGraph), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--graph", "g.yaml", "--report-file", "report.json")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("{\"a\":1}\r\n\nnot json\n[1, 2.5, \"grüße\"]\n{\"last\":true}")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	want := `{"a":1}` + "\n" + `{"line":"not json"}` + "\n" + `[1,2.5,"grüße"]` + "\n" + `{"last":true}` + "\n"
	if string(out) != want {
		t.Fatalf("stdout\n%s\nwant\n%s", out, want)
	}
	rep, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || !strings.Contains(string(rep), `"node.in.bad_lines_total":1`) {
		t.Fatalf("report %s (%v)", rep, err)
	}

	// Without --report-file stdout stays data only: a StdoutSink moves
	// the run's one-line summary to stderr.
	cmd = exec.Command(bin, "--graph", "g.yaml")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("{\"a\":1}\n")
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err = cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "{\"a\":1}\n" || !strings.Contains(errb.String(), "v2 graph executed") {
		t.Fatalf("stdout %q stderr %q", out, errb.String())
	}
}

// TestTailSurvivesKill9 tails a log into a SQLite queue while the test
// appends lines, rotates the log (rename, then a new file) and kills
// schnitzel with SIGKILL and restarts it, several times. At the end the
// queue holds every line exactly once.
func TestTailSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped under -short")
	}
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(logs, "app.log")
	graph := fmt.Sprintf(`version: 2
nodes:
  - id: tail
    kind: source
    plugin: schnitzel_stream.nodes.lines:FileTailSource
    config: {paths: [%q], poll_interval_sec: 0.02, format: ndjson, state_dir: state}
  - id: queue
    kind: sink
    plugin: schnitzel_stream.nodes.durable_sqlite:SqliteQueueSink
    config: {path: q.sqlite3}
edges:
  - {from: tail, to: queue}
`, log)
	if err := os.WriteFile(filepath.Join(dir, "g.yaml"), []byte(graph), 0o644); err != nil {
		t.Fatal(err)
	}
	qpath := filepath.Join(dir, "q.sqlite3")
	rows := func() int64 { return probe(t, qpath, `SELECT COUNT(*) FROM packets`) }

	written, rotations := 0, 0
	// appendLines writes n lines in pieces that split lines, so the
	// tailer sees partial lines too.
	appendLines := func(n int) {
		var b strings.Builder
		for range n {
			fmt.Fprintf(&b, "{\"n\":%d,\"pad\":%q}\n", written, strings.Repeat("x", rand.IntN(40)))
			written++
		}
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for s := b.String(); s != ""; {
			k := min(len(s), 1+rand.IntN(300))
			if _, err := f.WriteString(s[:k]); err != nil {
				t.Fatal(err)
			}
			s = s[k:]
		}
		f.Close()
	}
	rotate := func() {
		rotations++
		if err := os.Rename(log, fmt.Sprintf("%s.%d", log, rotations)); err != nil {
			t.Fatal(err)
		}
		appendLines(0) // logrotate's create: a new, empty file
	}
	startRun := func() (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(bin, "--graph", "g.yaml", "--report-file", "report.json")
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}

	appendLines(50)
	const kills = 8
	for i := range kills {
		cmd, stderr := startRun()
		before := rows()
		appendLines(100 + rand.IntN(200))
		if i%3 == 1 {
			rotate() // while running: the old file is finished, then the new
			appendLines(50 + rand.IntN(100))
		}
		// let this run commit something, then kill it at a random moment
		if !poll.Wait(30*time.Second, func() bool { return rows() > before }) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d committed nothing in 30s; stderr:\n%s", i, stderr.String())
		}
		appendLines(50 + rand.IntN(100))
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond) // chaos, not synchronisation
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if i%3 == 2 {
			appendLines(20)
			rotate() // while stopped: the restart finds the old file beside the path
			appendLines(20)
		}
	}

	cmd, stderr := startRun()
	poll.Until(t, 60*time.Second, fmt.Sprintf("the queue to hold all %d lines", written), func() bool { return rows() >= int64(written) })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("last run: %v\nstderr:\n%s", err, stderr.String())
	}
	total := rows()
	distinct := probe(t, qpath, `SELECT COUNT(DISTINCT json_extract(payload_json, '$.n')) FROM packets`)
	maxN := probe(t, qpath, `SELECT MAX(json_extract(payload_json, '$.n')) FROM packets`)
	if total != int64(written) || distinct != int64(written) || maxN != int64(written-1) {
		t.Fatalf("queue: %d rows, %d distinct lines, max n %d; want %d of each, max %d", total, distinct, maxN, written, written-1)
	}
	rep, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	t.Logf("%d lines, %d kills, %d rotations: every line once; last run's report: %s", written, kills, rotations, rep)
}
