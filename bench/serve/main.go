// Command serve is scripts/bench-serve's Go side: it starts `schnitzel
// serve` with N ticker graphs (TickerSource every 0.1 s -> Identity ->
// JsonlSink) and measures density (peak RSS, VmHWM, and CPU% of the serve
// process over -duration while every graph runs, and the packets/s the
// graphs write), API latency (p50/p99/max of -requests sequential GET
// /api/v1/graphs while they run) and reload time: for -reloads PUTs of a
// changed version of one graph, the time from sending the PUT to the new
// version's first packet in the sink file (an upper bound of
// stop-to-first-packet: it includes the validation), and the ApplyResult's
// reload_ns (old stopped to new started).
//
//	serve -bin ./schnitzel -graphs 100 -duration 30s -requests 1000 -reloads 10
//
// Linux only (/proc). Only the standard library: it speaks HTTP like any
// client would.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	binFlag  = flag.String("bin", "schnitzel", "schnitzel binary")
	nGraphs  = flag.Int("graphs", 100, "ticker graphs to run")
	interval = flag.Float64("interval", 0.1, "TickerSource interval_sec")
	duration = flag.Duration("duration", 30*time.Second, "density measurement window")
	requests = flag.Int("requests", 1000, "GET /api/v1/graphs requests for the latency figure")
	reloads  = flag.Int("reloads", 10, "reloads for the reload figure")
	jsonOut  = flag.String("json", "", "also write the figures as JSON to this file")
)

func graphYAML(out string, version int) string {
	return fmt.Sprintf(`version: 2
nodes:
  - id: src
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config: {interval_sec: %g, kind: v%d}
  - id: mid
    plugin: schnitzel_stream.nodes.dev:Identity
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.file_sink:JsonlSink
    config: {path: %q, fsync: never}
edges:
  - {src: src, dst: mid}
  - {src: mid, dst: out}
`, *interval, version, out)
}

type graphStatus struct {
	Name      string  `json:"name"`
	State     string  `json:"state"`
	OutPerSec float64 `json:"out_per_sec"`
	InPerSec  float64 `json:"in_per_sec"`
}

type server struct {
	url, token string
	pid        int
	client     *http.Client
}

func (s *server) do(method, path, ctype string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

func (s *server) list() ([]graphStatus, error) {
	b, code, err := s.do("GET", "/api/v1/graphs", "", nil)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET /api/v1/graphs: %d %s", code, b)
	}
	var out struct {
		Graphs []graphStatus `json:"graphs"`
	}
	return out.Graphs, json.Unmarshal(b, &out)
}

// procStatus reads a kB field of /proc/PID/status.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// cpuTicks is utime+stime of /proc/PID/stat, in clock ticks (100/s).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" of the command name: state is field 3.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func main() {
	flag.Parse()
	log.SetFlags(0)
	work, err := os.MkdirTemp("", "bench-serve-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	graphs, state, outDir := filepath.Join(work, "graphs"), filepath.Join(work, "state"), filepath.Join(work, "out")
	for _, d := range []string{graphs, outDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			log.Fatal(err)
		}
	}
	for i := range *nGraphs {
		name := fmt.Sprintf("g%03d", i)
		if err := os.WriteFile(filepath.Join(graphs, name+".yaml"), []byte(graphYAML(filepath.Join(outDir, name+".jsonl"), 0)), 0o600); err != nil {
			log.Fatal(err)
		}
	}

	cmd := exec.Command(*binFlag, "serve", "--listen", "127.0.0.1:0", "--graphs", graphs, "--state", state, "--log-level", "warn")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		log.Fatal(err)
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	urlRE := regexp.MustCompile(`serving on (\S+)`)
	sc := bufio.NewScanner(stderr)
	s := &server{pid: cmd.Process.Pid, client: &http.Client{Timeout: 10 * time.Second}}
	for sc.Scan() {
		if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
			s.url = m[1]
			break
		}
	}
	if s.url == "" {
		log.Fatal("serve printed no address")
	}
	go func() { _, _ = io.Copy(os.Stderr, stderr) }()
	tok, err := os.ReadFile(filepath.Join(state, "token"))
	if err != nil {
		log.Fatal(err)
	}
	s.token = strings.TrimSpace(string(tok))

	// Every graph running.
	for {
		gs, err := s.list()
		if err != nil {
			log.Fatal(err)
		}
		running := 0
		for _, g := range gs {
			if g.State == "running" {
				running++
			}
		}
		if running == *nGraphs {
			break
		}
		if time.Since(started) > time.Minute {
			log.Fatalf("only %d of %d graphs running after a minute", running, *nGraphs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	startup := time.Since(started)
	time.Sleep(2 * time.Second) // past start-up allocation, rates settled

	// Density.
	countLines := func() int64 {
		var n int64
		for i := range *nGraphs {
			b, _ := os.ReadFile(filepath.Join(outDir, fmt.Sprintf("g%03d.jsonl", i)))
			n += int64(bytes.Count(b, []byte("\n")))
		}
		return n
	}
	t0, c0, l0 := time.Now(), cpuTicks(s.pid), countLines()
	var rssMax int64
	for time.Since(t0) < *duration {
		time.Sleep(time.Second)
		rssMax = max(rssMax, procStatus(s.pid, "VmRSS"))
	}
	wall := time.Since(t0)
	cpu := float64(cpuTicks(s.pid)-c0) / 100 / wall.Seconds() * 100
	written := float64(countLines()-l0) / wall.Seconds()
	hwm := procStatus(s.pid, "VmHWM")
	threads := procStatus(s.pid, "Threads")

	// API latency while the graphs run.
	lat := make([]time.Duration, 0, *requests)
	for range *requests {
		t := time.Now()
		b, code, err := s.do("GET", "/api/v1/graphs", "", nil)
		if err != nil || code != 200 {
			log.Fatalf("GET /api/v1/graphs: %v %d %s", err, code, b)
		}
		lat = append(lat, time.Since(t))
	}

	// Reload: PUT version v, watch g000's sink for the first packet of kind v.
	sink := filepath.Join(outDir, "g000.jsonl")
	var toFirst, reloadNs []time.Duration
	for v := 1; v <= *reloads; v++ {
		fi, _ := os.Stat(sink)
		offset := fi.Size()
		marker := []byte(fmt.Sprintf(`"kind": "v%d"`, v))
		t := time.Now()
		b, code, err := s.do("PUT", "/api/v1/graphs/g000", "application/yaml", []byte(graphYAML(sink, v)))
		if err != nil || code != 200 {
			log.Fatalf("PUT g000 v%d: %v %d %s", v, err, code, b)
		}
		var res struct {
			Result struct {
				Reloaded   bool  `json:"reloaded"`
				ReloadTime int64 `json:"reload_ns"`
			} `json:"result"`
		}
		if err := json.Unmarshal(b, &res); err != nil || !res.Result.Reloaded {
			log.Fatalf("PUT g000 v%d: not reloaded: %s", v, b)
		}
		reloadNs = append(reloadNs, time.Duration(res.Result.ReloadTime))
		for {
			f, err := os.Open(sink)
			if err == nil {
				_, _ = f.Seek(offset, io.SeekStart)
				tail, _ := io.ReadAll(f)
				f.Close()
				if bytes.Contains(tail, marker) {
					toFirst = append(toFirst, time.Since(t))
					break
				}
			}
			if time.Since(t) > 10*time.Second {
				log.Fatalf("v%d: no packet of the new version after 10 s", v)
			}
			time.Sleep(time.Millisecond)
		}
	}

	fmt.Printf("schnitzel serve, %d graphs (TickerSource %g s -> Identity -> JsonlSink), %s window\n", *nGraphs, *interval, wall.Round(time.Second))
	fmt.Printf("  start-up to all running: %s\n", startup.Round(time.Millisecond))
	fmt.Printf("  density: peak RSS (VmHWM) %.1f MiB (%.0f KiB per graph), VmRSS max in window %.1f MiB, CPU %.1f%% of one core, %d threads\n",
		float64(hwm)/1024, float64(hwm)/float64(*nGraphs), float64(rssMax)/1024, cpu, threads)
	fmt.Printf("  packets written: %.0f/s (expected %.0f/s)\n", written, float64(*nGraphs) / *interval)
	fmt.Printf("  API GET /api/v1/graphs x%d: p50 %s, p99 %s, max %s\n", len(lat), ms(percentile(lat, 0.5)), ms(percentile(lat, 0.99)), ms(slices.Max(lat)))
	fmt.Printf("  reload x%d: PUT to first new packet p50 %s, max %s; reload_ns (old stopped to new started) p50 %s, max %s\n",
		len(toFirst), ms(percentile(toFirst, 0.5)), ms(slices.Max(toFirst)), ms(percentile(reloadNs, 0.5)), ms(slices.Max(reloadNs)))
	if *jsonOut != "" {
		fig := map[string]any{
			"graphs": *nGraphs, "interval_sec": *interval, "window_sec": wall.Seconds(), "startup_ms": startup.Milliseconds(),
			"vmhwm_kib": hwm, "vmrss_max_kib": rssMax, "kib_per_graph": float64(hwm) / float64(*nGraphs), "cpu_percent": cpu,
			"packets_per_sec": written, "api_p50_ms": float64(percentile(lat, 0.5)) / 1e6, "api_p99_ms": float64(percentile(lat, 0.99)) / 1e6,
			"reload_first_packet_p50_ms": float64(percentile(toFirst, 0.5)) / 1e6, "reload_first_packet_max_ms": float64(slices.Max(toFirst)) / 1e6,
			"reload_ns_p50_ms": float64(percentile(reloadNs, 0.5)) / 1e6,
		}
		b, _ := json.MarshalIndent(fig, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
