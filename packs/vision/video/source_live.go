package video

import (
	"github.com/schnitzel-stream/schnitzel/packs/vision/ffmpeg"

	"context"
	"errors"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// LiveConfig holds the keys the RTSP and webcam sources share; their
// configs embed it inline, so its keys sit beside their own.
type LiveConfig struct {
	SourceID               string         `yaml:"source_id" doc:"Packet source_id and the camera name in logs; default the node id."`
	MaxFrames              int64          `yaml:"max_frames" doc:"Stop after this many frames; 0 = no limit."`
	Reconnect              bool           `yaml:"reconnect" doc:"Reopen after an open failure (an unreachable camera, a missing device) or a stream loss. When false an open failure is an error and a stream loss ends the source."`
	ReconnectBackoffSec    plugin.Seconds `yaml:"reconnect_backoff_sec" doc:"First wait before reopening; doubles after each failed attempt, resets after frames flowed again (at least 0.05 s)."`
	ReconnectBackoffMaxSec plugin.Seconds `yaml:"reconnect_backoff_max_sec" doc:"Upper bound of the wait."`
	ReconnectMaxAttempts   int64          `yaml:"reconnect_max_attempts" doc:"Consecutive failed opens before the source fails the run; 0 = retry forever."`
	FPS                    float64        `yaml:"fps" doc:"Resample to this frame rate with ffmpeg's fps filter; 0 keeps every frame."`
	OpenTimeoutSec         plugin.Seconds `yaml:"open_timeout_sec" doc:"Time from starting ffmpeg to the first frame before the attempt counts as failed."`
	ReadTimeoutSec         plugin.Seconds `yaml:"read_timeout_sec" doc:"No frame for this long means the stream or device is lost (a stalled camera must not look healthy)."`
	LatestOnly             bool           `yaml:"latest_only" doc:"When downstream is slower than the camera, hand over the newest frame and skip stale ones (skipped_total); false queues every frame."`
}

// minBackoff keeps a zero backoff (upstream's tests use 0) from turning
// reconnects into a busy loop.
const minBackoff = 50 * time.Millisecond

func (c *LiveConfig) validate() error {
	var errs []error // every problem at once
	add := func(bad bool, key, format string, args ...any) {
		if bad {
			errs = append(errs, plugin.Errorf(key, format, args...))
		}
	}
	add(c.MaxFrames < 0, "max_frames", "must be >= 0 (0 = no limit), got %d", c.MaxFrames)
	add(c.ReconnectBackoffSec < 0, "reconnect_backoff_sec", "must be >= 0, got %v", c.ReconnectBackoffSec)
	add(c.ReconnectBackoffMaxSec < 0, "reconnect_backoff_max_sec", "must be >= 0, got %v", c.ReconnectBackoffMaxSec)
	add(c.ReconnectMaxAttempts < 0, "reconnect_max_attempts", "must be >= 0 (0 = unlimited), got %d", c.ReconnectMaxAttempts)
	add(c.FPS < 0, "fps", "must be >= 0 (0 = source rate), got %v", c.FPS)
	add(c.OpenTimeoutSec <= 0, "open_timeout_sec", "must be > 0, got %v", c.OpenTimeoutSec)
	add(c.ReadTimeoutSec <= 0, "read_timeout_sec", "must be > 0, got %v", c.ReadTimeoutSec)
	return errors.Join(errs...)
}

// backoff returns the waits between attempts: base, 2*base, ... up to max
// (upstream's doubling, without jitter), never below minBackoff.
type backoff struct {
	base, max, cur time.Duration
}

func newBackoff(baseSec, maxSec plugin.Seconds) backoff {
	b := max(baseSec.Duration(), minBackoff)
	return backoff{base: b, max: max(maxSec.Duration(), b), cur: b}
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.base }

// liveSource drives a camera: one ffmpeg process per session, reopened with
// backoff after failures. The RTSP and webcam nodes differ only in how they
// build ffmpeg's input and what they name in logs.
type liveSource struct {
	cfg  LiveConfig
	env  plugin.Env
	kind string // "rtsp", "webcam": log and error wording
	// input builds ffmpeg's input arguments for one attempt; an error (a
	// missing device) counts as a failed open.
	input func(ctx context.Context) ([]string, error)
	// script, when set, is the input instead: a URL kept out of argv.
	script *ffmpeg.InputScript
	// describe names the camera for logs and errors, secrets masked.
	describe  string
	extraMeta func(m *packet.Map)
	tool      ffmpeg.Tool
	started   bool

	sampling       // ffmpeg drops what the sampler after this source would (Downstream)
	next     int64 // sampling: the index the next decoded frame gets

	decodedN     atomic.Int64 // frames read from ffmpeg
	emitted      atomic.Int64
	skipped      atomic.Int64
	reconnects   atomic.Int64
	openFailures atomic.Int64
	streamLosses atomic.Int64
}

func (s *liveSource) Start(ctx context.Context) error {
	t, err := ffmpeg.Find(ctx)
	if err != nil {
		return fmt.Errorf("%s %s: %w", s.kind, s.cfg.SourceID, err)
	}
	s.tool, s.started = t, true
	if s.script != nil && !s.script.Supported(t) {
		s.script = nil
		s.env.Logger.Warn("ffmpeg is older than 5.0 (no concat script options): the camera URL, credentials included, is on ffmpeg's command line where every local user can read it; upgrade ffmpeg",
			"camera", s.cfg.SourceID, "ffmpeg", t.Path, "major", t.Major)
	}
	return nil
}

func (s *liveSource) Close(context.Context) error { return nil }

// LargePackets tells the runtime that this source's packets hold decoded
// frames, so inboxes are bounded by their bytes as well as their count.
func (s *liveSource) LargePackets() {}

// Downstream lets ffmpeg drop the frames a sampler right after this source
// would drop, before conversion and the pipe (see the file source). Frame
// indices keep counting decoded frames within a connection; across a
// reconnect they continue after the last frame shipped (the frames a lost
// connection decoded after it are not known, and were lost anyway). Frames
// not shipped between shipped ones are accounted as emitted here and
// dropped by the sampler, as if they had travelled.
func (s *liveSource) Downstream(next any, skipped func(int64)) {
	if !s.attach(next, skipped) {
		return
	}
	s.env.Logger.Debug("frames sampled in ffmpeg for the sampler after this source", "camera", s.cfg.SourceID, "every_n", s.every)
}

// liveMetrics declares what liveSource.Metrics reports.
func liveMetrics() []plugin.MetricSpec {
	return append(samplingMetrics(),
		plugin.MetricSpec{Name: "skipped_total", Help: "Stale frames skipped for a newer one (latest_only)."},
		plugin.MetricSpec{Name: "reconnect_total", Help: "Reconnection attempts after an open failure or a lost stream."},
		plugin.MetricSpec{Name: "open_failures_total", Help: "Attempts to open the stream or device that failed."},
		plugin.MetricSpec{Name: "stream_lost_total", Help: "Streams lost or stalled (no frame for read_timeout_sec) after delivering frames."},
	)
}

func (s *liveSource) Metrics() []plugin.Metric {
	return append(s.metrics(s.emitted.Load(), s.decodedN.Load()),
		plugin.Metric{Name: "skipped_total", Value: s.skipped.Load()},
		plugin.Metric{Name: "reconnect_total", Value: s.reconnects.Load()},
		plugin.Metric{Name: "open_failures_total", Value: s.openFailures.Load()},
		plugin.Metric{Name: "stream_lost_total", Value: s.streamLosses.Load()},
	)
}

// sessionResult says how a session ended.
type sessionResult struct {
	frames int64         // frames emitted in this session
	lived  time.Duration // from the first frame to the end
	stop   bool          // max_frames, downstream stop or ctx: end the run
	err    error         // why the stream failed or ended
}

func (s *liveSource) Run(ctx context.Context, out plugin.Emitter) error {
	if !s.started {
		if err := s.Start(ctx); err != nil {
			return err
		}
	}
	log := s.env.Logger.With("camera", s.cfg.SourceID, "input", s.describe)
	bo := newBackoff(s.cfg.ReconnectBackoffSec, s.cfg.ReconnectBackoffMaxSec)
	var (
		epoch    int64
		failures int64 // consecutive failed opens
	)
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		if attempt > 0 {
			wait := bo.next()
			s.reconnects.Add(1)
			log.Info("reconnecting", "in", wait.String(), "attempt", failures+1)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		r := s.session(ctx, out, &epoch)
		if r.stop || ctx.Err() != nil {
			return nil
		}
		cause := "stream ended"
		if r.err != nil {
			cause = r.err.Error()
		}
		if r.frames > 0 {
			failures = 0
			bo.reset()
			s.streamLosses.Add(1)
			if !s.cfg.Reconnect {
				// Upstream ends a non-reconnecting camera quietly.
				log.Warn("stream lost; reconnect is off, source ends", "cause", cause)
				return nil
			}
			log.Warn("stream lost", "cause", cause, "frames", r.frames, "lived", r.lived.Round(time.Millisecond).String())
			continue
		}
		failures++
		s.openFailures.Add(1)
		if !s.cfg.Reconnect {
			return fmt.Errorf("%s %s: cannot open %s: %s", s.kind, s.cfg.SourceID, s.describe, cause)
		}
		if s.cfg.ReconnectMaxAttempts > 0 && failures >= s.cfg.ReconnectMaxAttempts {
			return fmt.Errorf("%s %s: cannot open %s after %d attempts: %s", s.kind, s.cfg.SourceID, s.describe, failures, cause)
		}
		log.Warn("open failed", "cause", cause, "attempt", failures)
	}
}

// session runs one ffmpeg process until the stream fails or the run stops.
func (s *liveSource) session(ctx context.Context, out plugin.Emitter, epoch *int64) sessionResult {
	var r sessionResult
	input, err := s.input(ctx)
	if err != nil {
		r.err = err
		return r
	}
	// Cameras stream 4:2:0 (H.264/H.265): yuv420p. Webcams deliver
	// yuyv422 or MJPEG 4:2:2, which ffmpeg converts anyway: take bgr24
	// and keep their chroma.
	pf := frame.PixFmtYUV420P
	if s.kind == "webcam" {
		pf = frame.PixFmtBGR24
	}
	spec := ffmpeg.Spec{Input: input, Script: s.script, FPS: s.cfg.FPS, Mask: redact.Text, PixFmt: pf}
	// Sampling: the first frame of this connection is index base; keep n
	// (0-based in this connection) with (base + n - offset) mod every == 0.
	base := s.next
	if s.every > 1 {
		spec.Every = s.every
		spec.First = s.firstFrom(base)
	}
	dec, err := ffmpeg.Start(ctx, s.tool, spec)
	if err != nil {
		r.err = err
		return r
	}
	defer dec.Stop()

	// The watchdog kills ffmpeg when the first frame takes longer than the
	// open timeout or a later one longer than the read timeout; the reads
	// then fail and the session ends as a failure, never hanging.
	watchdog := time.AfterFunc(s.cfg.OpenTimeoutSec.Duration(), func() {
		dec.MarkStalled()
		dec.Kill()
	})
	defer watchdog.Stop()

	g, err := dec.AwaitGeometry(ctx)
	if err != nil {
		r.err = err
		if dec.Stalled() {
			r.err = dec.Failure(err)
		}
		return r
	}
	pool := g.Pool()
	ch := make(chan ffmpeg.Decoded, 1)
	pumpErr := make(chan error, 1)
	readTimeout := s.cfg.ReadTimeoutSec.Duration()
	nextIndex := s.indexer(base, &s.decodedN)
	if s.every > 1 {
		// Shipped frames are every_n frame intervals apart: a sparse
		// stream is not a stalled one.
		fps := g.FPS
		if s.cfg.FPS > 0 {
			fps = s.cfg.FPS
		}
		if fps <= 0 {
			fps = 1
		}
		readTimeout += time.Duration(float64(s.every) / fps * float64(time.Second))
	}
	go func() {
		pumpErr <- dec.Pump(pool, ch, s.cfg.LatestOnly, ffmpeg.PumpHooks{
			NextIndex: nextIndex,
			Frame: func(skipped bool) {
				watchdog.Reset(readTimeout)
				if skipped {
					s.skipped.Add(1)
				}
			},
			Blocked:   func() { watchdog.Stop() },
			Unblocked: func() { watchdog.Reset(readTimeout) },
		})
	}()
	drain := func() {
		dec.Kill()
		for it := range ch {
			it.F.Release()
		}
		<-pumpErr
	}

	var first time.Time
	for {
		var it ffmpeg.Decoded
		var ok bool
		select {
		case it, ok = <-ch:
		case <-ctx.Done():
			drain()
			r.stop = true
			return r
		}
		if !ok {
			break
		}
		if r.frames == 0 {
			*epoch++
			first = time.Now()
		}
		if s.arrive(it.F.Index, s.next, s.cfg.MaxFrames) {
			// Sampled in ffmpeg: this frame lies past the limit, so every
			// frame before it was decoded and accounted.
			it.F.Release()
			drain()
			r.stop = true
			return r
		}
		it.F.PTS = it.PTS
		if math.IsNaN(it.PTS) && g.FPS > 0 {
			it.F.PTS = float64(it.F.Index) / g.FPS
		}
		if err := out.Emit(s.packet(it, *epoch)); err != nil {
			it.F.Release()
			drain()
			r.stop = true
			return r
		}
		r.frames++
		r.lived = time.Since(first)
		if s.every > 1 {
			s.next = it.F.Index + 1
		}
		n := s.emitted.Add(1)
		if s.every <= 1 && s.cfg.MaxFrames > 0 && n >= s.cfg.MaxFrames {
			drain()
			r.stop = true
			return r
		}
	}
	if !first.IsZero() {
		r.lived = time.Since(first)
	}
	err = <-pumpErr
	if ctx.Err() != nil {
		r.stop = true
		return r
	}
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = dec.Failure(err)
		return r
	}
	if err := dec.Finish(); err != nil {
		r.err = err
	} else if dec.Stalled() {
		r.err = dec.Failure(nil)
	}
	return r
}

// packet builds HEAD's live frame packet: payload {frame, frame_idx}, meta
// {frame_idx, [camera_index,] epoch, idempotency_key}, ts = when the frame
// was read (wall clock).
func (s *liveSource) packet(it ffmpeg.Decoded, epoch int64) *packet.Packet {
	idx := it.F.Index
	meta := packet.NewMap(4)
	meta.Set("frame_idx", idx)
	if s.extraMeta != nil {
		s.extraMeta(meta)
	}
	meta.Set("epoch", epoch)
	meta.Set("idempotency_key", fmt.Sprintf("frame:%s:%d:%d", s.cfg.SourceID, epoch, idx))
	payload := packet.NewMap(2)
	payload.Set("frame", it.F)
	payload.Set("frame_idx", idx)
	p := packet.New("frame", s.cfg.SourceID, payload, packet.FormatTS(it.At), nil)
	p.Meta = meta
	return p
}

var (
	_ plugin.Source     = (*liveSource)(nil)
	_ plugin.Starter    = (*liveSource)(nil)
	_ plugin.Closer     = (*liveSource)(nil)
	_ plugin.Metrics    = (*liveSource)(nil)
	_ plugin.Downstream = (*liveSource)(nil)
)
