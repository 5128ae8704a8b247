package video

import (
	"github.com/schnitzel-stream/schnitzel/packs/vision/ffmpeg"

	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// FileConfig is OpenCvVideoFileSource's config.
type FileConfig struct {
	Path      string  `yaml:"path" required:"true" doc:"Video file, relative to the working directory (upstream: the repo root)."`
	SourceID  string  `yaml:"source_id" doc:"Packet source_id; default the node id."`
	MaxFrames int64   `yaml:"max_frames" doc:"Stop after this many frames; 0 = no limit."`
	StartTS   string  `yaml:"start_ts" doc:"ISO-8601 anchor (Z or offset; naive = UTC). When set, ts = start_ts + the frame's position in the video, so runs are reproducible; when empty, ts is the wall clock."`
	Loop      bool    `yaml:"loop" doc:"At the end of the file start again from the first frame (frame_idx keeps counting)."`
	FPS       float64 `yaml:"fps" doc:"Resample to this frame rate with ffmpeg's fps filter; 0 keeps every decoded frame."`
	Realtime  bool    `yaml:"realtime" doc:"Pace frames at their presentation times, like a camera; default false decodes as fast as downstream takes frames (upstream)."`
}

// Validate checks the keys that need no file access.
func (c *FileConfig) Validate() error {
	var errs []error // every problem at once
	if strings.TrimSpace(c.Path) == "" {
		errs = append(errs, plugin.Errorf("path", "must name a video file"))
	}
	if c.MaxFrames < 0 {
		errs = append(errs, plugin.Errorf("max_frames", "must be >= 0 (0 = no limit), got %d", c.MaxFrames))
	}
	if c.FPS < 0 {
		errs = append(errs, plugin.Errorf("fps", "must be >= 0 (0 = source rate), got %v", c.FPS))
	}
	if strings.TrimSpace(c.StartTS) != "" {
		if _, err := parseISO(c.StartTS); err != nil {
			errs = append(errs, plugin.Errorf("start_ts", "%v", err))
		}
	}
	return errors.Join(errs...)
}

type fileSource struct {
	cfg     FileConfig
	env     plugin.Env
	path    string // absolute
	start   time.Time
	hasTS   bool
	tool    ffmpeg.Tool
	probe   ffmpeg.ProbeInfo
	started bool

	sampling // ffmpeg drops what the sampler after this source would (Downstream)

	decodedN  atomic.Int64 // frames read from ffmpeg
	emitted   atomic.Int64
	passes    atomic.Int64
	ffmpegRSS atomic.Int64 // peak RSS of the decoder processes (benchmarks)
}

func newFileSource(c FileConfig, env plugin.Env) (plugin.Source, error) {
	if c.SourceID == "" {
		c.SourceID = env.NodeID
	}
	s := &fileSource{cfg: c, env: env, sampling: sampling{every: 1}}
	if strings.TrimSpace(c.StartTS) != "" {
		t, err := parseISO(c.StartTS)
		if err != nil {
			return nil, fmt.Errorf("start_ts: %w", err)
		}
		s.start, s.hasTS = t, true
	}
	return s, nil
}

// Start checks the file and ffmpeg before the run, so a bad path fails the
// graph at start-up (upstream failed in the constructor). Errors name the
// camera (source_id), as the live sources' do.
func (s *fileSource) Start(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return fmt.Errorf("camera %s: %w", s.cfg.SourceID, err)
	}
	return nil
}

func (s *fileSource) open(ctx context.Context) error {
	p := strings.TrimSpace(s.cfg.Path)
	abs, err := filepath.Abs(p)
	if err != nil {
		return fmt.Errorf("video file %s: %w", p, err)
	}
	s.path = abs
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("video file not found: %s", abs)
	case err != nil:
		return fmt.Errorf("video file %s: %w", abs, err)
	case st.IsDir():
		return fmt.Errorf("video file %s is a directory", abs)
	}
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("video file %s is not readable: %w", abs, err)
	}
	f.Close()
	// ffmpeg -version and ffprobe are each a process start that loads
	// every codec library: run them side by side.
	type found struct {
		t   ffmpeg.Tool
		err error
	}
	ff := make(chan found, 1)
	go func() { t, err := ffmpeg.Find(ctx); ff <- found{t, err} }()
	s.probe, err = ffmpeg.ProbeFile(ctx, abs)
	f2 := <-ff
	if f2.err != nil {
		return f2.err
	}
	s.tool = f2.t
	if err != nil {
		return fmt.Errorf("video file %s: %w", abs, err)
	}
	s.started = true
	s.env.Logger.Debug("video file opened", "path", abs, "size", fmt.Sprintf("%dx%d", s.probe.Width, s.probe.Height),
		"fps", s.probe.FPS, "duration_sec", s.probe.Duration)
	return nil
}

// LargePackets tells the runtime that this source's packets hold decoded
// frames, so inboxes are bounded by their bytes as well as their count.
func (s *fileSource) LargePackets() {}

// Downstream lets ffmpeg drop, before colour conversion and the pipe, the
// frames a sampler right after this source would drop: it still decodes
// every frame (the codec needs them) but ships one in every_n. Frame
// indices, times, the sampler's output and the run report (frames not
// shipped are accounted as emitted here and dropped by the sampler) stay
// the same. Not with loop or fps, where the frames after the last kept one
// cannot be counted from ffmpeg's statistics.
func (s *fileSource) Downstream(next any, skipped func(int64)) {
	if s.cfg.Loop || s.cfg.FPS > 0 || !s.attach(next, skipped) {
		return
	}
	s.env.Logger.Debug("frames sampled in ffmpeg for the sampler after this source", "every_n", s.every, "offset", s.offset)
}

func (s *fileSource) Run(ctx context.Context, out plugin.Emitter) error {
	err := s.run(ctx, out)
	if err == nil || errors.Is(err, plugin.ErrStop) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("camera %s: %w", s.cfg.SourceID, err)
}

func (s *fileSource) run(ctx context.Context, out plugin.Emitter) error {
	if !s.started {
		if err := s.open(ctx); err != nil {
			return err
		}
	}
	var (
		pool   *frame.Pool
		offset float64 // seconds of the passes before this one (loop)
		pace   = pacer{enabled: s.cfg.Realtime}
	)
	for {
		if ctx.Err() != nil {
			return nil
		}
		s.passes.Add(1)
		r, err := s.pass(ctx, out, &pool, offset, &pace)
		if err != nil {
			return fmt.Errorf("video file %s: %w", s.path, err)
		}
		if r.stop || !s.cfg.Loop {
			return nil
		}
		if r.frames == 0 {
			// A file that yields nothing would make loop spin forever.
			return fmt.Errorf("video file %s: no frames decoded", s.path)
		}
		offset += r.duration
	}
}

type passResult struct {
	frames   int64
	duration float64 // seconds covered by this pass
	stop     bool    // max_frames reached, downstream stopped or ctx ended
}

// pass decodes the file once.
func (s *fileSource) pass(ctx context.Context, out plugin.Emitter, pool **frame.Pool, offset float64, pace *pacer) (passResult, error) {
	var r passResult
	dec, err := ffmpeg.Start(ctx, s.tool, ffmpeg.Spec{
		Input:   []string{"-i", "file:" + s.path},
		FPS:     s.cfg.FPS,
		PixFmt:  ffmpeg.TransportFormat(s.probe.PixFmt),
		Every:   s.every,
		First:   s.firstFrom(0),
		Verbose: s.every > 1,
	})
	if err != nil {
		return r, err
	}
	defer func() {
		dec.Stop()
		if dec.MaxRSS() > s.ffmpegRSS.Load() {
			s.ffmpegRSS.Store(dec.MaxRSS())
		}
	}()
	g, err := dec.AwaitGeometry(ctx)
	if err != nil {
		if ctx.Err() != nil {
			r.stop = true
			return r, nil
		}
		return r, err
	}
	if *pool == nil || !g.Same(*pool) {
		*pool = g.Pool()
	}
	fps := g.FPS
	if s.cfg.FPS > 0 {
		fps = s.cfg.FPS
	} else if fps == 0 {
		fps = s.probe.FPS
	}

	// One frame read ahead overlaps ffmpeg's pipe with downstream work.
	ch := make(chan ffmpeg.Decoded, 1)
	pumpErr := make(chan error, 1)
	passStart := s.decodedN.Load() // no sampling with loop: index = frames read
	next := passStart              // the index after the last frame emitted
	nextIndex := s.indexer(passStart, &s.decodedN)
	go func() {
		pumpErr <- dec.Pump(*pool, ch, false, ffmpeg.PumpHooks{NextIndex: nextIndex})
	}()
	drain := func() {
		dec.Kill()
		for it := range ch {
			it.F.Release()
		}
		<-pumpErr
	}

	var last float64
	for it := range ch {
		if ctx.Err() != nil {
			it.F.Release()
			drain()
			r.stop = true
			return r, nil
		}
		if s.arrive(it.F.Index, next, s.cfg.MaxFrames) {
			// Sampled in ffmpeg: this frame lies past the limit, so every
			// frame before the limit exists and was accounted.
			it.F.Release()
			drain()
			r.stop = true
			return r, nil
		}
		pts := it.PTS
		if math.IsNaN(pts) {
			pts = 0
			if fps > 0 {
				pts = float64(it.F.Index-passStart) / fps
			}
		}
		last = pts
		it.F.PTS = offset + pts
		if !pace.wait(ctx, it.F.PTS) {
			it.F.Release()
			drain()
			r.stop = true
			return r, nil
		}
		if err := out.Emit(s.packet(it.F, pts)); err != nil {
			it.F.Release() // not taken: ours to recycle
			drain()
			r.stop = true
			return r, nil
		}
		r.frames++
		n := s.emitted.Add(1)
		next = it.F.Index + 1
		if s.every <= 1 && s.cfg.MaxFrames > 0 && n >= s.cfg.MaxFrames {
			drain()
			r.stop = true
			return r, nil
		}
	}
	if err := <-pumpErr; err != nil && err != io.EOF {
		if ctx.Err() != nil {
			r.stop = true
			return r, nil
		}
		return r, dec.Failure(err)
	}
	if err := dec.Finish(); err != nil {
		if ctx.Err() != nil {
			r.stop = true
			return r, nil
		}
		return r, err
	}
	if s.every > 1 {
		// The frames after the last kept one, from ffmpeg's statistics.
		if total := dec.DecodedFrames(); total > 0 {
			if s.cfg.MaxFrames > 0 {
				total = min(total, s.cfg.MaxFrames)
			}
			s.dropAhead(total - next)
		} else {
			s.env.Logger.Warn("ffmpeg did not report how many frames it decoded; frames after the last sampled one are not counted", "path", s.path)
		}
	}
	if e := dec.ErrorLines(); e != "" {
		// ffmpeg skips what it cannot decode and still exits 0: say so.
		s.env.Logger.Warn("ffmpeg reported decode errors; damaged frames were skipped", "path", s.path, "errors", e)
	}
	// The next pass starts one frame interval after this one's last frame.
	r.duration = last
	if fps > 0 {
		r.duration += 1 / fps
	}
	return r, nil
}

// packet builds upstream's frame packet: payload {frame, frame_idx}, meta
// {frame_idx, pos_msec, idempotency_key}.
func (s *fileSource) packet(f *frame.Frame, pos float64) *packet.Packet {
	idx := f.Index
	ts := ""
	if s.hasTS {
		ts = packet.FormatTS(s.start.Add(microseconds(f.PTS)))
	}
	meta := packet.NewMap(3)
	meta.Set("frame_idx", idx)
	meta.Set("pos_msec", int64(pos*1000))
	meta.Set("idempotency_key", fmt.Sprintf("frame:%s:%d", s.cfg.SourceID, idx))
	payload := packet.NewMap(2)
	payload.Set("frame", f)
	payload.Set("frame_idx", idx)
	p := packet.New("frame", s.cfg.SourceID, payload, ts, nil)
	p.Meta = meta
	return p
}

// microseconds converts seconds to a Duration rounded to the microsecond,
// half to even, as Python's timedelta does.
func microseconds(sec float64) time.Duration {
	return time.Duration(math.RoundToEven(sec*1000*1000)) * time.Microsecond
}

func (s *fileSource) Close(context.Context) error { return nil }

func (s *fileSource) Metrics() []plugin.Metric {
	return append(s.metrics(s.emitted.Load(), s.decodedN.Load()),
		plugin.Metric{Name: "passes_total", Value: s.passes.Load()})
}

// pacer sleeps until a frame's presentation time relative to the first
// frame, for realtime playback.
type pacer struct {
	enabled bool
	t0      time.Time
	pts0    float64
	started bool
}

// wait returns false when ctx ended while waiting.
func (p *pacer) wait(ctx context.Context, pts float64) bool {
	if !p.enabled {
		return true
	}
	if !p.started {
		p.t0, p.pts0, p.started = time.Now(), pts, true
		return true
	}
	d := time.Until(p.t0.Add(time.Duration((pts - p.pts0) * float64(time.Second))))
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var (
	_ plugin.Source     = (*fileSource)(nil)
	_ plugin.Starter    = (*fileSource)(nil)
	_ plugin.Closer     = (*fileSource)(nil)
	_ plugin.Metrics    = (*fileSource)(nil)
	_ plugin.Downstream = (*fileSource)(nil)
)
