// Package legacy runs the seed's v1 job graph
// (job: schnitzel_stream.jobs.legacy_ai_pipeline:LegacyAIPipelineJob): the
// layered configs/ settings, one camera, a frame sampler, the mock model or
// detector adapters, zones, dedup, snapshots and an event emitter (JSONL
// file, --dry-run log or backend POST), built from the vision pack's parts.
package legacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	_ "time/tzdata" // app.timezone must work on hosts without a zoneinfo database

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/dedup"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/packs/vision/snapshot"
	"github.com/schnitzel-stream/schnitzel/packs/vision/video"
	"github.com/schnitzel-stream/schnitzel/packs/vision/zones"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// JobName is the seed's plugin string of the job.
const JobName = "schnitzel_stream.jobs.legacy_ai_pipeline:LegacyAIPipelineJob"

// Register adds the legacy job to r.
func Register(r *plugin.Registry) {
	plugin.RegisterJob(r, plugin.JobSpec{
		Name:    JobName,
		Summary: "The seed's legacy AI pipeline (v1 job graph): configs/*.yaml + AI_* env, one camera, mock model or detector adapters, zones, dedup, snapshots, emitter.",
		Description: "Settings come from <config dir>/default.yaml and cameras.yaml, the app.env profile (dev.yaml or " +
			"prod.yaml) and AI_* environment variables. The config dir is the graph's `config.config_dir`, else the " +
			"parent of the graph's directory when it holds default.yaml or cameras.yaml (configs/graphs/ → configs/), " +
			"else ./configs; relative paths in the settings resolve against its parent. Emitter: --output-jsonl, " +
			"else --dry-run (log), else a POST to events.post_url. model.mode mock is upstream's mock model; model.mode " +
			"real runs the detector adapter(s) that model.adapter names as cmd:<command line> or an http(s) URL " +
			"(docs/detector-adapter.md), with MODEL_CLASS_MAP_PATH and TRACKER_TYPE/TRACKER_IOU/TRACKER_MAX_AGE; " +
			"file cameras are decoded by ffmpeg and paced at their frame rate.",
		New: func() plugin.Job { return &Job{} },
	})
}

// Job is the legacy pipeline.
type Job struct {
	frames, drops, events atomic.Int64
}

// configDir picks where the settings live.
func configDir(env plugin.JobEnv) string {
	if v, ok := env.Config.GetString("config_dir"); ok && strings.TrimSpace(v) != "" {
		return v
	}
	if env.GraphDir != "" {
		parent := filepath.Dir(env.GraphDir)
		for _, n := range []string{"default.yaml", "cameras.yaml"} {
			if _, err := os.Stat(filepath.Join(parent, n)); err == nil {
				return parent
			}
		}
	}
	return "configs"
}

// Run executes the pipeline until the video ends, ctx is cancelled, the
// source fails or --max-events events were emitted.
func (j *Job) Run(ctx context.Context, env plugin.JobEnv) error {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	getenv := env.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	a := env.Args
	if a.Video != "" && (a.SourceType == "rtsp" || a.SourceType == "plugin") {
		return errors.New("--video cannot be combined with --source-type rtsp/plugin")
	}
	dir := configDir(env)
	root, err := filepath.Abs(filepath.Dir(filepath.Clean(dir)))
	if err != nil {
		return err
	}
	cfg, err := loadLayers(dir, getenv)
	if err != nil {
		return err
	}
	if err := validate(cfg); err != nil {
		return fmt.Errorf("config %s: %w", dir, err)
	}
	s, err := buildSettings(cfg, root, overrides{CameraID: a.CameraID, Video: a.Video, SourceType: a.SourceType})
	if err != nil {
		return fmt.Errorf("config %s: %w", dir, err)
	}
	log = log.With("camera_id", s.CameraID, "source_type", s.Source.Type)
	if s.AppEnv == "prod" && s.Model.Mode != "real" {
		log.Warn("model.mode is not 'real' in production: the pipeline emits fake events", "model_mode", s.Model.Mode)
	}
	if s.Sensor {
		return errors.New("sensor.enabled: the sensor lane (Python sensor adapters) is not supported by schnitzel's legacy job")
	}
	var model *realModel
	if s.Model.Mode == "real" {
		// Before the source and the emitter: a model that cannot start
		// fails the run at once, as upstream's did.
		if model, err = newRealModel(ctx, s.Model.Adapter, root, getenv, log); err != nil {
			return err
		}
		defer model.close()
	}
	if s.Events.SnapshotBaseDir != "" {
		if err := os.MkdirAll(s.Events.SnapshotBaseDir, 0o755); err != nil {
			return fmt.Errorf("snapshot base dir not writable: %w", err)
		}
	}
	if a.Visualize {
		log.Warn("--visualize is accepted for compatibility; schnitzel opens no window")
	}
	loc := time.UTC
	if s.Timezone != "" {
		if l, err := time.LoadLocation(s.Timezone); err == nil {
			loc = l
		} else {
			log.Warn("unknown app.timezone, using UTC", "timezone", s.Timezone)
		}
	}

	src, fps, err := buildSource(s, a, root, log)
	if err != nil {
		return err
	}
	defer closeNode(src)
	em, err := buildEmitter(s, a, log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := em.Close(cctx); err != nil {
			log.Warn("emitter close", "error", err)
		}
	}()

	if st, ok := src.(plugin.Starter); ok {
		if err := st.Start(ctx); err != nil {
			return err
		}
	}
	zoneSrc, zclose := buildZones(ctx, s, log)
	defer zclose()
	var dd *dedup.Store
	if s.Dedup.Enabled {
		dd = dedup.New(time.Duration(s.Dedup.CooldownSec*float64(time.Second)), int(s.Dedup.PruneInterval))
	}

	p := &pipeline{
		job: j, s: s, loc: loc, log: log, em: em, zones: zoneSrc, dedup: dd, ctx: ctx, model: model,
		sampler: newSampler(s.FPSLimit, fps), maxEvents: int64(a.MaxEvents),
	}
	log.Info("pipeline started", "site_id", s.SiteID, "source_fps", fps, "fps_limit", s.FPSLimit,
		"zones_source", s.Zones.Source, "dedup", s.Dedup.Enabled, "snapshots", s.Events.SnapshotBaseDir != "")
	stopTelemetry := p.telemetry(ctx)
	err = src.(plugin.Source).Run(ctx, p)
	stopTelemetry()
	if env.Metrics != nil {
		env.Metrics("frames_total", j.frames.Load())
		env.Metrics("drops_total", j.drops.Load())
		env.Metrics("events_total", j.events.Load())
		if be, ok := em.(*backendEmitter); ok {
			env.Metrics("backend_ack_ok", be.ok.Load())
			env.Metrics("backend_ack_fail", be.failed.Load()+be.full.Load())
		}
	}
	if p.fatal != nil {
		return p.fatal
	}
	if err != nil && !errors.Is(err, plugin.ErrStop) {
		return fmt.Errorf("source: %w", err)
	}
	log.Info("pipeline finished", "frames", j.frames.Load(), "events", j.events.Load())
	return nil
}

func closeNode(n any) {
	if c, ok := n.(plugin.Closer); ok {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}
}

// The plugin names the job's sources log under (Env.Plugin).
const (
	filePlugin   = "schnitzel_stream.packs.vision.nodes:OpenCvVideoFileSource"
	rtspPlugin   = "schnitzel_stream.packs.vision.nodes:OpenCvRtspSource"
	webcamPlugin = "schnitzel_stream.packs.vision.nodes:OpenCvWebcamSource"
)

// buildSource builds the camera's frame source from the video pack and
// returns it with the frame rate the sampler divides (0: sample every
// frame, the live sources resample to fps_limit in ffmpeg instead).
func buildSource(s *settings, a plugin.JobArgs, root string, log *slog.Logger) (any, float64, error) {
	env := func(name string) plugin.Env {
		return plugin.Env{NodeID: s.CameraID, Kind: "source", Plugin: name, Logger: log}
	}
	named := func(n plugin.Source, err error) (any, error) {
		if err != nil {
			return nil, fmt.Errorf("%s source: %v", s.Source.Type, err)
		}
		return n, nil
	}
	target := float64(max(1, s.FPSLimit))
	switch s.Source.Type {
	case "plugin":
		return nil, 0, fmt.Errorf("plugin sources (Python adapter %q) are not supported by schnitzel", s.Source.Adapter)
	case "webcam":
		idx := int64(0)
		if s.Source.Index != nil {
			idx = *s.Source.Index
		}
		if a.CameraIndex != nil {
			idx = int64(*a.CameraIndex)
		}
		c := video.DefaultWebcamConfig()
		c.CameraIndex, c.SourceID, c.FPS = idx, s.CameraID, target
		n, err := named(video.NewWebcamSource(c, env(webcamPlugin)))
		return n, 0, err
	case "rtsp":
		if s.Source.URL == "" {
			return nil, 0, errors.New("rtsp source requires url")
		}
		r := s.RTSP
		c := video.DefaultRTSPConfig()
		c.URL, c.SourceID, c.FPS = s.Source.URL, s.CameraID, target
		c.ReconnectBackoffSec = plugin.Seconds(math.Max(0.05, r.BaseDelaySec))
		c.ReconnectBackoffMaxSec = plugin.Seconds(math.Max(0.05, r.MaxDelaySec))
		c.ReconnectMaxAttempts, c.Transport = r.MaxAttempts, r.Transport
		c.ReadTimeoutSec = plugin.Seconds(math.Max(0.1, r.TimeoutSec))
		n, err := named(video.NewRTSPSource(c, env(rtspPlugin)))
		return n, 0, err
	}
	path := s.Source.Path
	if a.Video != "" {
		if _, err := os.Stat(a.Video); err != nil {
			return nil, 0, fmt.Errorf("video file not found: %s", a.Video)
		}
		path = a.Video
	} else {
		if path != "" {
			if _, err := os.Stat(path); err != nil {
				log.Warn("configured source path not found, falling back to a sample video", "path", path)
				path = ""
			}
		}
		if path == "" {
			samples, _ := filepath.Glob(filepath.Join(root, "data", "samples", "*.mp4"))
			sort.Strings(samples)
			if len(samples) == 0 {
				return nil, 0, fmt.Errorf("no video: the camera has no existing source.path and there are no mp4 files under %s",
					filepath.Join(root, "data", "samples"))
			}
			path = samples[0]
		}
	}
	fps, err := probeFPS(path)
	if err != nil {
		return nil, 0, err
	}
	c := video.DefaultFileConfig()
	c.Path, c.SourceID, c.Loop, c.Realtime = path, s.CameraID, a.Loop, true
	n, err := named(video.NewFileSource(c, env(filePlugin)))
	return n, fps, err
}

func buildEmitter(s *settings, a plugin.JobArgs, log *slog.Logger) (emitter, error) {
	switch {
	case a.OutputJSONL != "":
		return newFileEmitter(a.OutputJSONL, log)
	case a.DryRun:
		return stdoutEmitter{log: log}, nil
	case s.Events.EmitterAdapter != "":
		return nil, fmt.Errorf("events.emitter_adapter %q: Python emitter plugins are not supported by schnitzel; use --output-jsonl, --dry-run or events.post_url",
			s.Events.EmitterAdapter)
	}
	return newBackendEmitter(s.Events, log)
}

// zoneSource is what the pipeline asks for zones.
type zoneSource interface{ Zones() []zones.Zone }

// buildZones returns nil for zones.source none (the event keeps its zone).
func buildZones(ctx context.Context, s *settings, log *slog.Logger) (zoneSource, func()) {
	ttl := 30.0
	if s.Zones.API != nil {
		ttl = s.Zones.API.CacheTTLSec
	}
	switch s.Zones.Source {
	case "file":
		if s.Zones.FilePath == "" {
			return staticZones(nil), func() {}
		}
		f := &zones.File{Path: s.Zones.FilePath, TTL: time.Duration(ttl * float64(time.Second)), Log: log}
		if err := f.Load(); err != nil {
			log.Warn("zones file unusable; no zones until it is fixed", "error", err)
		}
		return f, func() {}
	case "api":
		if s.Zones.API == nil {
			return staticZones(nil), func() {}
		}
		z := s.Zones.API
		api := &zones.API{Log: log, Cfg: zones.APIConfig{
			BaseURL: z.BaseURL, PathTemplate: z.PathTemplate, SiteID: s.SiteID, CameraID: s.CameraID,
			Timeout:      time.Duration(z.TimeoutSec * float64(time.Second)),
			TTL:          time.Duration(z.CacheTTLSec * float64(time.Second)),
			ErrorBackoff: time.Duration(z.ErrorBackoffSec * float64(time.Second)),
			MaxFailures:  int(z.MaxFailures),
		}}
		api.Start(ctx)
		return api, api.Close
	}
	return nil, func() {}
}

type staticZones []zones.Zone

func (z staticZones) Zones() []zones.Zone { return z }

// sampler is upstream's FrameSampler: frame i is kept when
// floor(i*ratio) > floor((i-1)*ratio), ratio = target/source fps; every
// frame when the source rate is unknown.
type sampler struct{ ratio float64 }

func newSampler(target int64, fps float64) sampler {
	if fps <= 0 {
		return sampler{}
	}
	return sampler{ratio: float64(max(1, target)) / fps}
}

func (s sampler) keep(i int64) bool {
	if s.ratio == 0 || i == 0 {
		return true
	}
	return int64(float64(i)*s.ratio) > int64(float64(i-1)*s.ratio)
}

// pipeline handles each frame the source emits: sample, build, zone,
// dedup, snapshot, emit. It is the source's Emitter, so it runs on the
// source's goroutine and backpressure is natural.
type pipeline struct {
	job       *Job
	s         *settings
	loc       *time.Location
	log       *slog.Logger
	em        emitter
	zones     zoneSource
	dedup     *dedup.Store
	sampler   sampler
	ctx       context.Context
	model     *realModel // nil: model.mode mock
	fatal     error      // why the model ended the run
	maxEvents int64
	idx       int64
	snapFails int64
}

func (p *pipeline) EmitPort(_ string, pk *packet.Packet) error { return p.Emit(pk) }

func (p *pipeline) Emit(pk *packet.Packet) error {
	if p.maxEvents > 0 && p.job.events.Load() >= p.maxEvents {
		return plugin.ErrStop
	}
	p.job.frames.Add(1)
	i := p.idx
	p.idx++
	if !p.sampler.keep(i) {
		p.job.drops.Add(1)
		return nil
	}
	var fr *frame.Frame
	if m, ok := pk.Payload.(*packet.Map); ok {
		v, _ := m.Get("frame")
		fr, _ = v.(*frame.Frame)
	}
	if p.model == nil {
		p.handle(p.mockEvent(i), fr)
		return p.stopIfDone()
	}
	dets, err := p.model.detections(p.ctx, pk)
	if err != nil {
		p.fatal = err
		return plugin.ErrStop
	}
	for _, ev := range p.realEvents(dets) {
		p.handle(ev, fr)
	}
	return p.stopIfDone()
}

// handle runs one event through zones, dedup, snapshot and the emitter.
func (p *pipeline) handle(ev *packet.Map, fr *frame.Frame) {
	if p.zones != nil {
		zs := p.zones.Zones()
		res := zones.Result("", false)
		if len(zs) > 0 {
			et, _ := ev.Get("event_type")
			bbox, _ := ev.Get("bbox")
			var err error
			if res, err = zones.Evaluate(packet.PyStr(et), bbox, zs, p.s.Rules); err != nil {
				p.log.Warn("zone evaluation failed", "error", err)
				res = zones.Result("", false)
			}
		}
		ev.Set("zone", res)
	}
	if p.dedup != nil && !p.dedup.Allow(ev) {
		return
	}
	if p.s.Events.SnapshotBaseDir != "" && fr != nil {
		p.snapshot(ev, fr)
	}
	if p.em.Emit(context.Background(), ev) {
		p.job.events.Add(1)
	}
}

// stopIfDone ends the run once --max-events events were emitted (checked
// after a whole frame, as upstream).
func (p *pipeline) stopIfDone() error {
	if p.maxEvents > 0 && p.job.events.Load() >= p.maxEvents {
		return plugin.ErrStop
	}
	return nil
}

// mockEvent is upstream's MockModelEventBuilder event for sampled frame i.
func (p *pipeline) mockEvent(i int64) *packet.Map {
	return packet.MapOf(
		"event_id", packet.NewID(),
		"ts", isoformat(time.Now().In(p.loc)),
		"site_id", p.s.SiteID,
		"camera_id", p.s.CameraID,
		"event_type", "ZONE_INTRUSION",
		"object_type", "PERSON",
		"severity", "LOW",
		"track_id", i%100,
		"bbox", packet.MapOf("x1", 10+i%100, "y1", int64(20), "x2", int64(200), "y2", int64(260)),
		"confidence", 0.75,
		"zone", zones.Result("Z0", false),
		"snapshot_path", nil,
	)
}

func (p *pipeline) snapshot(ev *packet.Map, fr *frame.Frame) {
	if !fr.HasPixels() {
		return
	}
	str := func(k string) string { v, _ := ev.Get(k); return packet.PyStr(v) }
	rel := snapshot.Rel(str("site_id"), str("camera_id"), str("ts"), str("track_id"))
	used, err := snapshot.Write(p.s.Events.SnapshotBaseDir, rel, fr.Image())
	if err != nil {
		if p.snapFails++; p.snapFails == 1 || p.snapFails%100 == 0 {
			p.log.Warn("snapshot save failed", "error", err, "failures", p.snapFails)
		}
		return
	}
	ev.Set("snapshot_path", snapshot.Public(p.s.Events.SnapshotBaseDir, used, p.s.Events.SnapshotPrefix))
}

// isoformat renders t as Python's datetime.isoformat on an aware datetime.
func isoformat(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05-07:00")
	}
	return t.Format("2006-01-02T15:04:05.000000-07:00")
}

// telemetry logs metrics and heartbeats on their own clock (upstream only
// logged after successful frames, so a dead camera went silent).
func (p *pipeline) telemetry(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	tick := func(on bool, sec float64) <-chan time.Time {
		if !on || sec <= 0 {
			return nil
		}
		t := time.NewTicker(time.Duration(sec * float64(time.Second)))
		go func() { <-ctx.Done(); t.Stop() }()
		return t.C
	}
	mt := tick(p.s.Metrics.Enabled, p.s.Metrics.IntervalSec)
	hb := tick(p.s.Heart.Enabled, p.s.Heart.IntervalSec)
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-mt:
				p.log.Info("metrics", "frames", p.job.frames.Load(), "drops", p.job.drops.Load(),
					"events", p.job.events.Load())
			case <-hb:
				p.log.Info("heartbeat", "uptime_sec", int64(time.Since(start).Seconds()))
			}
		}
	}()
	return func() { cancel(); <-done }
}
