package video

import (
	"context"
	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// needFFmpeg skips the test when ffmpeg/ffprobe are missing (CI installs
// them; the skip message says what to install).
func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not in PATH: install ffmpeg (apt-get install ffmpeg) to run the video tests", b)
		}
	}
}

// makeVideo renders a lavfi source into dir/name with ffmpeg.
func makeVideo(t testing.TB, dir, name, lavfi string, extra ...string) string {
	t.Helper()
	needFFmpeg(t)
	out := filepath.Join(dir, name)
	args := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i", lavfi}, extra...)
	args = append(args, out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
	return out
}

// build constructs a node with a logger writing into the returned buffer.
func build(t testing.TB, name string, cfg *packet.Map) (any, *logbuf.Buffer) {
	t.Helper()
	n, logs, err := tryBuild(name, cfg)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return n, logs
}

func tryBuild(name string, cfg *packet.Map) (any, *logbuf.Buffer, error) {
	reg := plugin.NewRegistry()
	Register(reg)
	e, ok := reg.Lookup(name)
	if !ok {
		return nil, nil, &plugin.FieldError{Msg: "not registered: " + name}
	}
	dec, _, errs := e.Decode(cfg)
	if len(errs) > 0 {
		return nil, nil, errs[0]
	}
	logs := &logbuf.Buffer{}
	n, err := e.Build(dec, plugin.Env{NodeID: "src", Kind: "source", Plugin: name,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return n, logs, err
}

// recorder is an Emitter that keeps every packet and never blocks; Max > 0
// returns ErrStop after Max packets, like --max-events.
type recorder struct {
	mu      sync.Mutex
	pkts    []*packet.Packet
	max     int
	changed chan struct{}
}

func newRecorder(max int) *recorder { return &recorder{max: max, changed: make(chan struct{})} }

func (r *recorder) Emit(p *packet.Packet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.max > 0 && len(r.pkts) >= r.max {
		return plugin.ErrStop
	}
	r.pkts = append(r.pkts, p)
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

func (r *recorder) EmitPort(_ string, p *packet.Packet) error { return r.Emit(p) }

func (r *recorder) packets() []*packet.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*packet.Packet(nil), r.pkts...)
}

// waitFor polls cond until it holds or the deadline passes.
func (r *recorder) waitFor(t testing.TB, d time.Duration, what string, cond func([]*packet.Packet) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(r.pkts)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// eventually polls cond every 20 ms until it holds or d passes.

// runSource starts Start+Run in a goroutine; stop cancels and returns Run's
// error, failing if Run does not return promptly.
func runSource(t testing.TB, n any, out plugin.Emitter) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() {
		if s, ok := n.(plugin.Starter); ok {
			if err := s.Start(ctx); err != nil {
				ch <- err
				return
			}
		}
		ch <- n.(plugin.Source).Run(ctx, out)
	}()
	var once sync.Once
	var res error
	return func() error {
		once.Do(func() {
			cancel()
			select {
			case res = <-ch:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s of cancel")
			}
		})
		return res
	}, ch
}

func metric(n any, name string) int64 {
	for _, m := range n.(plugin.Metrics).Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	return -1
}

// ffmpegChildren lists our child processes named ffmpeg (Linux /proc), to
// prove every decoder was reaped: a zombie still shows up here.
func ffmpegChildren(t testing.TB) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		return nil
	}
	self := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		comm := s[i+1 : j]
		f := strings.Fields(s[j+1:])
		if len(f) > 2 && f[1] == self && comm == "ffmpeg" {
			out = append(out, e.Name()+":"+f[0])
		}
	}
	return out
}

func noFFmpegChildren(t testing.TB) {
	t.Helper()
	// Reaping happens before Run returns; allow the kernel a moment to
	// drop /proc entries of children we killed and waited for.
	poll.Until(t, 5*time.Second, "ffmpeg children to be reaped", func() bool { return len(ffmpegChildren(t)) == 0 })
}

func cfgOf(kv ...any) *packet.Map {
	m := packet.NewMap(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		v := kv[i+1]
		if n, ok := v.(int); ok {
			v = int64(n)
		}
		m.Set(kv[i].(string), v)
	}
	return m
}

const (
	rtspName   = "schnitzel_stream.packs.vision.nodes:OpenCvRtspSource"
	webcamName = "schnitzel_stream.packs.vision.nodes:OpenCvWebcamSource"
)
