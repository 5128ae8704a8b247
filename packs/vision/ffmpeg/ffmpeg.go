// Package ffmpeg is the vision pack's decoding library: it finds ffmpeg,
// probes files with ffprobe, runs one ffmpeg child process per stream
// session and reads its raw frames (yuv420p for 4:2:0 video, bgr24
// otherwise) from a pipe into pooled frames (package frame), with geometry,
// frame times and errors taken from its stderr. Network inputs reach ffmpeg
// through an input script, never argv. It registers no nodes; the sources
// that use it are in package video. No cgo: ffmpeg and ffprobe must be on
// PATH.
package ffmpeg

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

// Tool is a located ffmpeg binary.
type Tool struct {
	Path  string
	Major int // major version; 0 when unknown (a git build): assume current
}

var (
	versionMu    sync.Mutex
	versionCache = map[string]int{}
	reVersion    = regexp.MustCompile(`(?m)^ffmpeg version n?(\d+)\.`)
)

// Find looks ffmpeg up on PATH (every time: PATH may change between
// runs in tests) and learns its major version once per path.
func Find(ctx context.Context) (Tool, error) {
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		return Tool{}, ErrFFmpegNotFound
	}
	versionMu.Lock()
	major, ok := versionCache[p]
	versionMu.Unlock()
	if !ok {
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(vctx, p, "-hide_banner", "-version").Output()
		if err != nil {
			return Tool{}, fmt.Errorf("run %s -version: %w", p, err)
		}
		if m := reVersion.FindSubmatch(out); m != nil {
			major, _ = strconv.Atoi(string(m[1]))
		}
		versionMu.Lock()
		versionCache[p] = major
		versionMu.Unlock()
	}
	return Tool{Path: p, Major: major}, nil
}

// Modern reports ffmpeg 5 or later (or an unknown version, taken as current).
func (t Tool) Modern() bool { return t.Major == 0 || t.Major >= 5 }

// Spec describes one ffmpeg invocation.
type Spec struct {
	Input []string // input options ending with "-i", source
	// Script, when set, replaces Input: ffmpeg reads the URL from a concat
	// script so that it never appears in argv (inputscript.go).
	Script *InputScript
	FPS    float64 // > 0: resample with the fps filter
	// PixFmt is the pipe's format: frame.PixFmtYUV420P (default) or
	// frame.PixFmtBGR24.
	PixFmt string
	// Every > 1: pass only frames n (0-based, after fps) with
	// n mod Every == First, ffmpeg's select filter; the rest are decoded
	// but neither converted nor written.
	Every, First int64
	// Verbose logs at level verbose, for the closing statistics (frames
	// decoded) that account for the frames select dropped at the end.
	Verbose bool
	Mask    func(string) string // applied to ffmpeg's log lines before they are kept; nil keeps them
}

func (t Tool) args(s Spec) []string {
	level := "level+info"
	if s.Verbose {
		level = "level+verbose"
	}
	a := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", level}
	a = append(a, s.Input...)
	vf := ""
	if s.FPS > 0 {
		vf = "fps=" + strconv.FormatFloat(s.FPS, 'f', -1, 64) + ","
	}
	if s.Every > 1 {
		// n + every - first >= 0, so mod never sees a negative.
		vf += fmt.Sprintf(`select=not(mod(n+%d\,%d)),`, s.Every-s.First, s.Every)
	}
	if t.Modern() {
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
	pf := s.PixFmt
	if pf == "" {
		pf = frame.PixFmtYUV420P
	}
	return append(a, "-f", "rawvideo", "-pix_fmt", pf, "pipe:1")
}

// Decoder is one running ffmpeg process.
type Decoder struct {
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

// Start starts ffmpeg. The process is killed when ctx ends; call
// Stop in every case to reap it.
func Start(ctx context.Context, t Tool, s Spec) (*Decoder, error) {
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
	if s.Script != nil {
		text, err := s.Script.text()
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
		s.Input = s.Script.args(hand.loc)
		// ffmpeg names its input "pipe:3" in errors: say which camera.
		inner, loc, shown := s.Mask, hand.loc, redact.URL(s.Script.URL)
		if inner == nil {
			inner = redact.Text
		}
		s.Mask = func(l string) string { return inner(strings.ReplaceAll(l, loc, shown)) }
	}
	cmd := exec.CommandContext(ctx, t.Path, t.args(s)...)
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
	d := &Decoder{cmd: cmd, stdout: outR, log: newLogState(s.Mask), logDone: make(chan struct{}), inputOpened: sync.OnceFunc(hand.done)}
	go func() {
		defer close(d.logDone)
		defer errR.Close()
		d.log.consume(errR)
	}()
	return d, nil
}

// MarkStalled records that no frame came in time (a watchdog's verdict),
// so Failure reports a timeout rather than the kill that follows.
func (d *Decoder) MarkStalled() { d.stalled.Store(true) }

// Stalled reports whether MarkStalled was called.
func (d *Decoder) Stalled() bool { return d.stalled.Load() }

// MaxRSS is the reaped process's peak resident set in bytes, 0 if unknown
// or not reaped yet.
func (d *Decoder) MaxRSS() int64 { return d.maxRSS }

// DecodedFrames is how many frames ffmpeg decoded, from its closing
// statistics (Spec.Verbose); -1 when it did not say.
func (d *Decoder) DecodedFrames() int64 { return d.log.decodedFrames() }

// ErrorLines are ffmpeg's last error lines joined, "" if none.
func (d *Decoder) ErrorLines() string { return d.log.errorLines() }

// Kill ends the process without reaping it (safe from any goroutine).
func (d *Decoder) Kill() {
	d.killed.Store(true)
	_ = d.cmd.Process.Kill()
}

// Stop kills the process if it still runs, reaps it and closes the pipes.
// It returns ffmpeg's exit error, nil after a clean exit or a kill by us.
func (d *Decoder) Stop() error {
	d.waitOnce.Do(func() {
		d.Kill()
		d.waitErr = d.wait()
	})
	return d.waitErr
}

// wait reaps the process and closes stdout; it does not kill.
func (d *Decoder) wait() error {
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

// Finish waits for a process that reached EOF on its own and reports a
// non-zero exit with ffmpeg's reason.
func (d *Decoder) Finish() error {
	var err error
	d.waitOnce.Do(func() {
		d.waitErr = d.wait()
	})
	err = d.waitErr
	if err != nil {
		return d.Failure(err)
	}
	return nil
}

// Failure wraps err with ffmpeg's own explanation.
func (d *Decoder) Failure(err error) error {
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

// AwaitGeometry waits until ffmpeg announces its output size. It fails when
// ffmpeg exits first (its reason is in the error) or ctx ends.
func (d *Decoder) AwaitGeometry(ctx context.Context) (Geometry, error) {
	defer d.inputOpened()
	for {
		g, _, done, changed := d.log.snapshot()
		if g != nil {
			return *g, nil
		}
		if done {
			// stderr closed: the process ended (or is about to).
			err := d.Finish()
			if err == nil {
				err = errors.New("ffmpeg produced no video output")
			}
			return Geometry{}, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Geometry{}, ctx.Err()
		}
	}
}

// Decoded is one frame read from ffmpeg.
type Decoded struct {
	F   *frame.Frame
	PTS float64   // seconds from ffmpeg's stream start; NaN when unknown
	At  time.Time // when its last byte arrived
}

// readFrame fills f from stdout. io.EOF means a clean end of stream.
func (d *Decoder) readFrame(f *frame.Frame) (Decoded, error) {
	size := frame.FrameSize(f.PixFmt, f.Width, f.Height)
	if _, err := io.ReadFull(d.stdout, f.Raw()[:size]); err != nil {
		if err == io.EOF {
			return Decoded{}, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return Decoded{}, errors.New("stream ended inside a frame")
		}
		return Decoded{}, err
	}
	it := Decoded{F: f, At: time.Now(), PTS: math.NaN()}
	if v, ok := d.log.popPTS(); ok {
		it.PTS = v
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
			it.PTS = v
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

// PumpHooks lets a source watch the pump.
type PumpHooks struct {
	NextIndex func() int64 // the index of the next frame read
	// Frame is called for every decoded frame; skipped reports that an
	// older frame was dropped for it (latest mode).
	Frame func(skipped bool)
	// Blocked and Unblocked bracket a send that waits for the consumer
	// (queue mode), so a watchdog does not take downstream backpressure
	// for a stalled camera.
	Blocked, Unblocked func()
}

// Pump reads frames until EOF or error and hands them to ch, which it
// closes at the end. With latest set, a frame the consumer has not taken
// yet is replaced by the newer one (and released): a live camera must not
// build a backlog of stale pictures when downstream is slower. The returned
// error is nil at a clean EOF.
func (d *Decoder) Pump(pool *frame.Pool, ch chan Decoded, latest bool, h PumpHooks) error {
	defer close(ch)
	for {
		f := pool.Get()
		it, err := d.readFrame(f)
		if err != nil {
			f.Release()
			return err
		}
		f.Index = h.NextIndex()
		if !latest {
			if h.Frame != nil {
				h.Frame(false)
			}
			select {
			case ch <- it:
			default:
				if h.Blocked != nil {
					h.Blocked()
				}
				ch <- it
				if h.Unblocked != nil {
					h.Unblocked()
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
				old.F.Release()
				skipped = true
			default:
			}
			ch <- it
		}
		if h.Frame != nil {
			h.Frame(skipped)
		}
	}
}
