package nodes

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// DisplayConfig is OpenCvBboxDisplaySink's config: HEAD's keys (window
// ones accepted and unused: there is no GUI) plus output_dir.
type DisplayConfig struct {
	WindowName    string  `yaml:"window_name" doc:"Accepted for HEAD graphs; unused (no GUI)."`
	WaitKeyMs     int64   `yaml:"wait_key_ms" doc:"Accepted for HEAD graphs; unused (no GUI)."`
	LineThickness int64   `yaml:"line_thickness" doc:"Box line width in pixels (min 1)."`
	FontScale     float64 `yaml:"font_scale" doc:"Accepted for HEAD graphs; unused (labels are not drawn)."`
	ColorBGR      []int64 `yaml:"color_bgr" doc:"Box colour [b, g, r] (0..255 each); fewer than 3 values: the default."`
	ShowStats     bool    `yaml:"show_stats" doc:"Accepted for HEAD graphs; unused (no text rendering)."`
	StopOnQuitKey bool    `yaml:"stop_on_quit_key" doc:"Accepted for HEAD graphs; unused (no keyboard)."`
	Forward       bool    `yaml:"forward" doc:"Pass each frame packet on after drawing it."`
	OutputDir     string  `yaml:"output_dir" doc:"Ours: write the annotated frames here as JPEG (created at start). Empty: frames are only counted (not_shown_total) and a warning is logged once."`
	KeepFrames    bool    `yaml:"keep_frames" doc:"Ours: write <source_id>_<frame_idx>.jpg per frame; false keeps only <source_id>.jpg, replaced atomically by each frame (a live preview)."`
	JPEGQuality   int64   `yaml:"jpeg_quality" doc:"Ours: JPEG quality (1-100)."`
}

// Validate clamps like HEAD.
func (c *DisplayConfig) Validate() error {
	c.LineThickness = max(1, c.LineThickness)
	if len(c.ColorBGR) < 3 {
		c.ColorBGR = []int64{48, 220, 48}
	}
	c.ColorBGR = append([]int64(nil), c.ColorBGR[:3]...) // never write into the shared default
	for i := range c.ColorBGR {
		c.ColorBGR[i] = min(255, max(0, c.ColorBGR[i]))
	}
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		return plugin.Errorf("jpeg_quality", "must be between 1 and 100, got %d", c.JPEGQuality)
	}
	c.OutputDir = strings.TrimSpace(c.OutputDir)
	return nil
}

func registerDisplay(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[DisplayConfig]{
		Name: headPack + "OpenCvBboxDisplaySink", Aliases: []string{headNodes + "yolo:OpenCvBboxDisplaySink"},
		Role: plugin.RoleSink, In: []string{"frame"}, Out: []string{"*"},
		InProfile: plugin.ProfileInproc,
		Stability: plugin.Beta,
		Summary:   "Headless stand-in for HEAD's OpenCV window: draws payload.detections boxes and writes JPEGs to output_dir.",
		Description: "schnitzel has no GUI. With output_dir the sink draws each detection's bbox (line_thickness, color_bgr) " +
			"on a copy of the frame and writes it as JPEG: by default one <source_id>.jpg per source, atomically replaced " +
			"(open it in an auto-refreshing viewer), or with keep_frames one file per frame. Without output_dir frames are " +
			"counted (not_shown_total) and a warning says once that no display is available. Labels and the stats line " +
			"are not drawn; window_name, wait_key_ms, font_scale, show_stats and stop_on_quit_key are accepted and unused. " +
			"A payload that is not a mapping or holds no decoded frame drops that packet.",
		Defaults: DisplayConfig{
			WindowName: "Schnitzel Stream - YOLO", WaitKeyMs: 1, LineThickness: 2, FontScale: 0.6,
			ColorBGR: []int64{48, 220, 48}, ShowStats: true, StopOnQuitKey: true, JPEGQuality: 90,
		},
		Metrics: []plugin.MetricSpec{
			{Name: "shown_total", Help: "Annotated frames written to output_dir."},
			{Name: "not_shown_total", Help: "Frames only counted: no output_dir (no display available)."},
			{Name: "failed_total", Help: "Annotated frames that could not be written."},
		},
		NewProcessor: func(c DisplayConfig, env plugin.Env) (plugin.Processor, error) {
			cs := env.Counters()
			return &displaySink{Counters: cs, cfg: c, env: env,
				shown: cs.Get("shown_total"), notShown: cs.Get("not_shown_total"), failed: cs.Get("failed_total")}, nil
		},
	})
}

type displaySink struct {
	*plugin.Counters
	cfg                     DisplayConfig
	env                     plugin.Env
	mu                      sync.Mutex
	canvas                  *image.RGBA
	shown, notShown, failed *plugin.Counter
	warned                  atomic.Bool
}

func (s *displaySink) Start(context.Context) error {
	if s.cfg.OutputDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.cfg.OutputDir, 0o755); err != nil {
		return fmt.Errorf("OpenCvBboxDisplaySink %q: output_dir: %w", s.env.NodeID, err)
	}
	return nil
}

func (s *displaySink) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	payload, ok := p.Payload.(*packet.Map)
	if !ok {
		return plugin.DropPacket(fmt.Errorf("OpenCvBboxDisplaySink %q: expected frame payload as a mapping, got %T", s.env.NodeID, p.Payload))
	}
	v, _ := payload.Get("frame")
	fr, ok := v.(*frame.Frame)
	if !ok || !fr.HasPixels() {
		return plugin.DropPacket(fmt.Errorf("OpenCvBboxDisplaySink %q: expected a decoded frame in payload.frame, got %s", s.env.NodeID, packet.PyStr(v)))
	}
	if s.cfg.OutputDir == "" {
		s.notShown.Add(1)
		if !s.warned.Swap(true) {
			s.env.Logger.Warn("no display available (headless build): frames are counted, not shown; set output_dir to write annotated JPEGs",
				"node", s.env.NodeID)
		}
	} else if err := s.write(p, payload, fr); err != nil {
		if n := s.failed.Add(1); n == 1 || n%100 == 0 {
			s.env.Logger.Warn("display frame not written", "error", err, "failed_total", n)
		}
	} else {
		s.shown.Add(1)
	}
	if s.cfg.Forward {
		return out.Emit(p)
	}
	return nil
}

func (s *displaySink) write(p *packet.Packet, payload *packet.Map, fr *frame.Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.canvas == nil || s.canvas.Rect.Dx() != fr.Width || s.canvas.Rect.Dy() != fr.Height {
		s.canvas = image.NewRGBA(image.Rect(0, 0, fr.Width, fr.Height))
	}
	fr.CopyRGBA(s.canvas)
	col := color.RGBA{R: uint8(s.cfg.ColorBGR[2]), G: uint8(s.cfg.ColorBGR[1]), B: uint8(s.cfg.ColorBGR[0]), A: 0xff}
	dets, _ := payload.Get("detections")
	list, _ := dets.([]any)
	for _, d := range list {
		m, ok := d.(*packet.Map)
		if !ok {
			continue
		}
		b, _ := m.Get("bbox")
		bm, ok := b.(*packet.Map)
		if !ok {
			continue
		}
		coord := func(k string) int {
			switch x := mustGet(bm, k).(type) {
			case int64:
				return int(x)
			case float64:
				return int(x)
			}
			return 0
		}
		drawRect(s.canvas, coord("x1"), coord("y1"), coord("x2"), coord("y2"), int(s.cfg.LineThickness), col)
	}
	src := sanitize(p.SourceID)
	name := src + ".jpg"
	if s.cfg.KeepFrames {
		idx, _ := payload.Get("frame_idx")
		n, _ := idx.(int64)
		name = fmt.Sprintf("%s_%08d.jpg", src, n)
	}
	tmp, err := os.CreateTemp(s.cfg.OutputDir, ".display-*.jpg")
	if err != nil {
		return err
	}
	err = tmp.Chmod(0o644) // a preview others may read, not a private temp file
	if err == nil {
		err = jpeg.Encode(tmp, s.canvas, &jpeg.Options{Quality: int(s.cfg.JPEGQuality)})
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.cfg.OutputDir, name))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", filepath.Join(s.cfg.OutputDir, name), err)
	}
	return nil
}

func mustGet(m *packet.Map, k string) any {
	v, _ := m.Get(k)
	return v
}

// drawRect draws an axis-aligned rectangle outline of width t, clipped to
// the image, with the line inside the box from the corner points on (as
// OpenCV centres it on the edge, boxes here look t/2 pixels smaller).
func drawRect(img *image.RGBA, x1, y1, x2, y2, t int, c color.RGBA) {
	if x2 < x1 {
		x1, x2 = x2, x1
	}
	if y2 < y1 {
		y1, y2 = y2, y1
	}
	fill := func(ax, ay, bx, by int) {
		r := image.Rect(ax, ay, bx, by).Intersect(img.Rect)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				img.SetRGBA(x, y, c)
			}
		}
	}
	fill(x1, y1, x2+1, y1+t)     // top
	fill(x1, y2-t+1, x2+1, y2+1) // bottom
	fill(x1, y1, x1+t, y2+1)     // left
	fill(x2-t+1, y1, x2+1, y2+1) // right
}

// sanitize keeps a source id usable as a file name.
func sanitize(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '-' || ch == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "frame"
	}
	return string(b)
}

var (
	_ plugin.Starter   = (*displaySink)(nil)
	_ plugin.Processor = (*displaySink)(nil)
)
