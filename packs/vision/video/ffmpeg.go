package video

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// Decoding runs ffmpeg as a child process, one per stream session:
//
//	ffmpeg <input> -map 0:v:0 -vf [fps=N,]showinfo -f rawvideo -pix_fmt yuv420p pipe:1
//
// stdout carries exactly W*H + 2*ceil(W/2)*ceil(H/2) bytes per frame, read into pooled buffers;
// stderr carries geometry, frame times and errors (stderr.go). No cgo: the
// codecs live in the ffmpeg binary. Every started process is waited for
// (no zombies) and killed when the run ends, the session stops early or
// the context is cancelled.

// ErrFFmpegNotFound is returned when ffmpeg is not on PATH.
var ErrFFmpegNotFound = errors.New("ffmpeg not found in PATH (install ffmpeg)")

// ErrFFprobeNotFound is returned when ffprobe is not on PATH.
var ErrFFprobeNotFound = errors.New("ffprobe not found in PATH (install ffmpeg, which ships it)")

// tool is a located ffmpeg binary.
type tool struct {
	path  string
	major int // major version; 0 when unknown (a git build): assume current
}

var (
	versionMu    sync.Mutex
	versionCache = map[string]int{}
	reVersion    = regexp.MustCompile(`(?m)^ffmpeg version n?(\d+)\.`)
)

// findFFmpeg looks ffmpeg up on PATH (every time: PATH may change between
// runs in tests) and learns its major version once per path.
func findFFmpeg(ctx context.Context) (tool, error) {
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		return tool{}, ErrFFmpegNotFound
	}
	versionMu.Lock()
	major, ok := versionCache[p]
	versionMu.Unlock()
	if !ok {
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(vctx, p, "-hide_banner", "-version").Output()
		if err != nil {
			return tool{}, fmt.Errorf("run %s -version: %w", p, err)
		}
		if m := reVersion.FindSubmatch(out); m != nil {
			major, _ = strconv.Atoi(string(m[1]))
		}
		versionMu.Lock()
		versionCache[p] = major
		versionMu.Unlock()
	}
	return tool{path: p, major: major}, nil
}

func (t tool) modern() bool { return t.major == 0 || t.major >= 5 }

// decodeSpec describes one ffmpeg invocation.
type decodeSpec struct {
	input []string // input options ending with "-i", source
	// script, when set, replaces input: ffmpeg reads the URL from a concat
	// script so that it never appears in argv (inputscript.go).
	script *inputScript
	fps    float64 // > 0: resample with the fps filter
	// pixFmt is the pipe's format: frame.PixFmtYUV420P (default) or
	// frame.PixFmtBGR24.
	pixFmt string
	// every > 1: pass only frames n (0-based, after fps) with
	// n mod every == first, ffmpeg's select filter; the rest are decoded
	// but neither converted nor written.
	every, first int64
	// verbose logs at level verbose, for the closing statistics (frames
	// decoded) that account for the frames select dropped at the end.
	verbose bool
	mask    func(string) string
}

func (t tool) args(s decodeSpec) []string {
	level := "level+info"
	if s.verbose {
		level = "level+verbose"
	}
	a := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", level}
	a = append(a, s.input...)
	vf := ""
	if s.fps > 0 {
		vf = "fps=" + strconv.FormatFloat(s.fps, 'f', -1, 64) + ","
	}
	if s.every > 1 {
		// n + every - first >= 0, so mod never sees a negative.
		vf += fmt.Sprintf(`select=not(mod(n+%d\,%d)),`, s.every-s.first, s.every)
	}
	if t.modern() {
		// Frames must reach us one to one with showinfo's lines:
		// passthrough stops ffmpeg from duplicating or dropping frames to
		// make a constant rate.
		a = append(a, "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf+"showinfo=checksum=0", "-fps_mode", "passthrough")
	} else {
		a = append(a, "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf+"showinfo", "-vsync", "passthrough")
	}
	// yuv420p by default: what the common codecs decode to, so ffmpeg
	// converts nothing and the pipe carries half the bytes of bgr24;
	// frames convert to BGR in-process only when a node reads pixels
	// (frame.BGR).
	pf := s.pixFmt
	if pf == "" {
		pf = frame.PixFmtYUV420P
	}
	return append(a, "-f", "rawvideo", "-pix_fmt", pf, "pipe:1")
}

// decoder is one running ffmpeg process.
type decoder struct {
	cmd     *exec.Cmd
	stdout  *os.File
	log     *logState
	logDone chan struct{}
	killed  atomic.Bool
	stalled atomic.Bool
	// noPTS is set once a frame's showinfo line failed to show up: from
	// then on frames do not wait for it (an ffmpeg that logs differently
	// must not cost a timeout per frame).
	noPTS atomic.Bool

	// inputOpened drops the input script once ffmpeg has read it (its
	// output geometry is known, or it ended).
	inputOpened func()

	waitOnce sync.Once
	waitErr  error
	maxRSS   int64 // peak resident set of the reaped process, bytes (0 if unknown)
}

// startDecoder starts ffmpeg. The process is killed when ctx ends; call
// stop in every case to reap it.
func startDecoder(ctx context.Context, t tool, s decodeSpec) (*decoder, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("ffmpeg stderr pipe: %w", err)
	}
	growPipe(outR)
	hand := &scriptHandoff{started: func() {}, done: func() {}}
	if s.script != nil {
		text, err := s.script.text()
		if err == nil {
			hand, err = newHandoff(text)
		}
		if err != nil {
			outR.Close()
			outW.Close()
			errR.Close()
			errW.Close()
			return nil, err
		}
		s.input = s.script.args(hand.loc)
		// ffmpeg names its input "pipe:3" in errors: say which camera.
		inner, loc, shown := s.mask, hand.loc, redact.URL(s.script.url)
		if inner == nil {
			inner = redact.Text
		}
		s.mask = func(l string) string { return inner(strings.ReplaceAll(l, loc, shown)) }
	}
	cmd := exec.CommandContext(ctx, t.path, t.args(s)...)
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.ExtraFiles = hand.extra
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Start()
	hand.started()
	// The child has its own copies of the write ends; closing ours makes
	// the readers see EOF when the child exits.
	outW.Close()
	errW.Close()
	if err != nil {
		hand.done()
		outR.Close()
		errR.Close()
		if errors.Is(err, exec.ErrNotFound) {
			return nil, ErrFFmpegNotFound
		}
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	d := &decoder{cmd: cmd, stdout: outR, log: newLogState(s.mask), logDone: make(chan struct{}), inputOpened: sync.OnceFunc(hand.done)}
	go func() {
		defer close(d.logDone)
		defer errR.Close()
		d.log.consume(errR)
	}()
	return d, nil
}

// kill ends the process without reaping it (safe from any goroutine).
func (d *decoder) kill() {
	d.killed.Store(true)
	_ = d.cmd.Process.Kill()
}

// stop kills the process if it still runs, reaps it and closes the pipes.
// It returns ffmpeg's exit error, nil after a clean exit or a kill by us.
func (d *decoder) stop() error {
	d.waitOnce.Do(func() {
		d.kill()
		d.waitErr = d.wait()
	})
	return d.waitErr
}

// wait reaps the process and closes stdout; it does not kill.
func (d *decoder) wait() error {
	err := d.cmd.Wait()
	d.inputOpened()
	if d.cmd.ProcessState != nil {
		d.maxRSS = childMaxRSS(d.cmd.ProcessState)
	}
	<-d.logDone
	d.stdout.Close()
	if d.killed.Load() {
		return nil
	}
	return err
}

// finish waits for a process that reached EOF on its own and reports a
// non-zero exit with ffmpeg's reason.
func (d *decoder) finish() error {
	var err error
	d.waitOnce.Do(func() {
		d.waitErr = d.wait()
	})
	err = d.waitErr
	if err != nil {
		return d.failure(err)
	}
	return nil
}

// failure wraps err with ffmpeg's own explanation.
func (d *decoder) failure(err error) error {
	<-d.logDone
	cause := d.log.cause()
	if d.stalled.Load() {
		if cause != "" {
			return fmt.Errorf("no frame within the timeout (%s)", cause)
		}
		return errors.New("no frame within the timeout")
	}
	if cause == "" {
		return err
	}
	return errors.New(cause)
}

// awaitGeometry waits until ffmpeg announces its output size. It fails when
// ffmpeg exits first (its reason is in the error) or ctx ends.
func (d *decoder) awaitGeometry(ctx context.Context) (geometry, error) {
	defer d.inputOpened()
	for {
		g, _, done, changed := d.log.snapshot()
		if g != nil {
			return *g, nil
		}
		if done {
			// stderr closed: the process ended (or is about to).
			err := d.finish()
			if err == nil {
				err = errors.New("ffmpeg produced no video output")
			}
			return geometry{}, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return geometry{}, ctx.Err()
		}
	}
}

// decoded is one frame read from ffmpeg.
type decoded struct {
	f   *frame.Frame
	pts float64   // seconds from ffmpeg's stream start; NaN when unknown
	at  time.Time // when its last byte arrived
}

// readFrame fills f from stdout. io.EOF means a clean end of stream.
func (d *decoder) readFrame(f *frame.Frame) (decoded, error) {
	size := frame.FrameSize(f.PixFmt, f.Width, f.Height)
	if _, err := io.ReadFull(d.stdout, f.Raw()[:size]); err != nil {
		if err == io.EOF {
			return decoded{}, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return decoded{}, errors.New("stream ended inside a frame")
		}
		return decoded{}, err
	}
	it := decoded{f: f, at: time.Now(), pts: math.NaN()}
	if v, ok := d.log.popPTS(); ok {
		it.pts = v
		return it, nil
	}
	if d.noPTS.Load() {
		return it, nil
	}
	// showinfo logs a frame before ffmpeg writes it, so its line is in the
	// stderr pipe already; wait only for our reader goroutine to parse it.
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for {
		_, _, done, changed := d.log.snapshot()
		if v, ok := d.log.popPTS(); ok {
			it.pts = v
			return it, nil
		}
		if done {
			return it, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			d.noPTS.Store(true)
			return it, nil
		}
	}
}

// pumpHooks lets a source watch the pump.
type pumpHooks struct {
	nextIndex func() int64
	// frame is called for every decoded frame; skipped reports that an
	// older frame was dropped for it (latest mode).
	frame func(skipped bool)
	// blocked and unblocked bracket a send that waits for the consumer
	// (queue mode), so a watchdog does not take downstream backpressure
	// for a stalled camera.
	blocked, unblocked func()
}

// pump reads frames until EOF or error and hands them to ch, which it
// closes at the end. With latest set, a frame the consumer has not taken
// yet is replaced by the newer one (and released): a live camera must not
// build a backlog of stale pictures when downstream is slower. The returned
// error is nil at a clean EOF.
func (d *decoder) pump(pool *frame.Pool, ch chan decoded, latest bool, h pumpHooks) error {
	defer close(ch)
	for {
		f := pool.Get()
		it, err := d.readFrame(f)
		if err != nil {
			f.Release()
			return err
		}
		f.Index = h.nextIndex()
		if !latest {
			if h.frame != nil {
				h.frame(false)
			}
			select {
			case ch <- it:
			default:
				if h.blocked != nil {
					h.blocked()
				}
				ch <- it
				if h.unblocked != nil {
					h.unblocked()
				}
			}
			continue
		}
		skipped := false
		select {
		case ch <- it:
		default:
			// Single producer: after taking the stale one out there is room.
			select {
			case old := <-ch:
				old.f.Release()
				skipped = true
			default:
			}
			ch <- it
		}
		if h.frame != nil {
			h.frame(skipped)
		}
	}
}
