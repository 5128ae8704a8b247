package ffmpeg

import (
	"bufio"
	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// ffmpeg's log is the decoder's side channel. It runs with
// `-loglevel level+info` and a showinfo filter, and tells us:
//   - the geometry of what arrives on stdout: the "Output #0" stream line
//     (the auto-inserted scaler keeps this size for the whole process, even
//     when the input changes resolution mid-stream);
//   - each frame's presentation time, from showinfo's "pts:" and the
//     filter's time base, in output order;
//   - why it failed: the [error]/[fatal] lines.

var (
	reOutSize = regexp.MustCompile(`, (\d+)x(\d+)(?:[ ,\[]|$)`)
	reOutFPS  = regexp.MustCompile(`, ([0-9.]+)(k?) fps`)
	// "Video: <codec>[ (<tag>)], <pix_fmt>[(<range, colorspace, ...>)], WxH"
	reOutFmt = regexp.MustCompile(`Video: [^,(]*(?:\([^)]*\))?[^,]*, (\w+)(?:\(([^)]*)\))?, \d+x\d+`)
	reTB     = regexp.MustCompile(`config in time_base: (\d+)/(\d+)`)
	reInfo   = regexp.MustCompile(`\[(info|verbose|debug|trace)\]`)
	// ffmpeg's closing statistics at -loglevel verbose.
	reDecoded = regexp.MustCompile(`Input stream #\d+:\d+ \(video\): \d+ packets read \(\d+ bytes\); (\d+) frames decoded`)
	rePTS     = regexp.MustCompile(`\bn: *\d+ +pts: *(-?\d+|NOPTS)`)
)

// Geometry is the raw output format of one ffmpeg process.
type Geometry struct {
	W, H   int
	FPS    float64     // 0 when ffmpeg did not say
	PixFmt string      // frame.PixFmtYUV420P or frame.PixFmtBGR24
	Color  frame.Color // yuv420p: matrix and range ffmpeg tagged
}

// Pool returns a frame pool for this output format.
func (g Geometry) Pool() *frame.Pool {
	if g.PixFmt == frame.PixFmtBGR24 {
		return frame.NewPool(g.W, g.H)
	}
	return frame.NewYUV420Pool(g.W, g.H, g.Color)
}

// Same reports whether frames of g fit a pool made for o.
func (g Geometry) Same(p *frame.Pool) bool {
	w, h := p.Size()
	f, c := p.Format()
	return w == g.W && h == g.H && f == g.PixFmt && c == g.Color
}

// logState collects what the stderr reader learnt. Its zero value is ready.
type logState struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every update
	geom    *Geometry
	pts     []float64 // seconds; NaN when the frame had no pts
	tbNum   int64
	tbDen   int64
	errs    []string // last [error]/[fatal] lines, oldest first
	warns   []string // last [warning] lines, oldest first
	last    string   // last other line: the reason when ffmpeg tagged none
	done    bool     // stderr reached EOF
	decoded int64    // frames the decoder produced, from the closing stats; -1 unknown
	inOut   bool     // inside the "Output #0" block
	mask    func(string) string
}

const keepErrLines = 6

func newLogState(mask func(string) string) *logState {
	if mask == nil {
		mask = func(s string) string { return s }
	}
	return &logState{changed: make(chan struct{}), mask: mask, decoded: -1}
}

// consume reads ffmpeg's stderr to EOF. ffmpeg blocks when its stderr pipe
// is full, so this must run for the whole life of the process.
func (s *logState) consume(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.ReadSlice('\n')
		// Copy now: the slice is only valid until the next read.
		line := string(b)
		// A huge line (SEI hex dumps): keep its head, skip the rest.
		for err == bufio.ErrBufferFull {
			_, err = br.ReadSlice('\n')
		}
		if line != "" {
			s.line(strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			s.mu.Lock()
			s.done = true
			s.notifyLocked()
			s.mu.Unlock()
			return
		}
	}
}

func (s *logState) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *logState) line(l string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.Contains(l, "Parsed_showinfo") {
		if m := rePTS.FindStringSubmatch(l); m != nil {
			v := math.NaN()
			if n, err := strconv.ParseInt(m[1], 10, 64); err == nil && s.tbDen > 0 {
				// n * (num/den), in this order, is how OpenCV computes its position.
				v = float64(n) * (float64(s.tbNum) / float64(s.tbDen))
			}
			s.pts = append(s.pts, v)
			s.notifyLocked()
		} else if m := reTB.FindStringSubmatch(l); m != nil {
			s.tbNum, _ = strconv.ParseInt(m[1], 10, 64)
			s.tbDen, _ = strconv.ParseInt(m[2], 10, 64)
		}
		return
	}
	switch {
	case strings.Contains(l, "frames decoded"):
		if m := reDecoded.FindStringSubmatch(l); m != nil {
			s.decoded, _ = strconv.ParseInt(m[1], 10, 64)
		}
	case strings.Contains(l, "Output #0,"):
		s.inOut = true
	case s.inOut && s.geom == nil && strings.Contains(l, "Stream #0:") && strings.Contains(l, "Video:"):
		if g, ok := parseStreamLine(l); ok {
			s.geom = &g
			s.notifyLocked()
		}
	case strings.Contains(l, "[error]") || strings.Contains(l, "[fatal]") || strings.Contains(l, "[panic]"):
		s.errs = keepLast(s.errs, s.mask(cleanLogLine(l)))
	case strings.Contains(l, "[warning]"):
		s.warns = keepLast(s.warns, s.mask(cleanLogLine(l)))
	case !reInfo.MatchString(l):
		// Untagged: an ffmpeg without the level flag, or a message from
		// before logging was set up (bad options).
		if c := strings.TrimSpace(l); c != "" {
			s.last = c
		}
	}
}

// parseStreamLine reads "WxH" and "N fps" from a stream description such as
// "Stream #0:0: Video: rawvideo (BGR[24] / 0x18524742), bgr24(pc, ...),
// 320x240 [SAR 1:1 DAR 4:3], q=2-31, 44236 kb/s, 24 fps, 24 tbn".
func parseStreamLine(l string) (Geometry, bool) {
	fm := reOutFmt.FindStringSubmatch(l)
	_, l, _ = strings.Cut(l, "Video:")
	m := reOutSize.FindStringSubmatch(l)
	if m == nil {
		return Geometry{}, false
	}
	w, _ := strconv.Atoi(m[1])
	h, _ := strconv.Atoi(m[2])
	if w <= 0 || h <= 0 {
		return Geometry{}, false
	}
	g := Geometry{W: w, H: h, PixFmt: frame.PixFmtYUV420P}
	if fm != nil {
		if fm[1] == frame.PixFmtBGR24 {
			g.PixFmt = frame.PixFmtBGR24
			fm[2] = "" // RGB has no matrix or range to apply
		}
		// "(tv, bt709, progressive)", "(pc, bt470bg/unknown/unknown)": the
		// range, then colorspace[/primaries/transfer].
		for _, tok := range strings.Split(fm[2], ", ") {
			cs, _, _ := strings.Cut(tok, "/")
			switch {
			case tok == "pc":
				g.Color.FullRange = true
			case cs == "bt709":
				g.Color.BT709 = true
			}
		}
	}
	if m := reOutFPS.FindStringSubmatch(l); m != nil {
		g.FPS, _ = strconv.ParseFloat(m[1], 64)
		if m[2] == "k" {
			g.FPS *= 1000
		}
	}
	return g, true
}

// cleanLogLine drops the "[ctx @ 0x...] [level] " prefixes.
func cleanLogLine(l string) string {
	for strings.HasPrefix(l, "[") {
		i := strings.Index(l, "] ")
		if i < 0 {
			break
		}
		l = l[i+2:]
	}
	return strings.TrimSpace(l)
}

// cause summarises why ffmpeg failed: its last error lines, or "" if none.
func (s *logState) cause() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Errors say why; warnings only when there is nothing better.
	if len(s.errs) > 0 {
		return strings.Join(s.errs, "; ")
	}
	if len(s.warns) > 0 {
		return strings.Join(s.warns, "; ")
	}
	return s.mask(s.last)
}

// decodedFrames returns how many frames the decoder produced, from
// ffmpeg's closing statistics (-loglevel verbose), or -1.
func (s *logState) decodedFrames() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.decoded
}

// errorLines returns ffmpeg's error lines only ("" when none).
func (s *logState) errorLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.errs, "; ")
}

func keepLast(lines []string, l string) []string {
	if l == "" {
		return lines
	}
	lines = append(lines, l)
	if len(lines) > keepErrLines {
		lines = append(lines[:0:0], lines[len(lines)-keepErrLines:]...)
	}
	return lines
}

// snapshot returns the state and a channel that is closed at the next
// update.
func (s *logState) snapshot() (geom *Geometry, npts int, done bool, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.geom, len(s.pts), s.done, s.changed
}

// popPTS removes and returns the oldest frame time, if one is known.
func (s *logState) popPTS() (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pts) == 0 {
		return 0, false
	}
	v := s.pts[0]
	s.pts = s.pts[1:]
	if len(s.pts) == 0 {
		s.pts = s.pts[:0:0] // let the backing array go; it only grows otherwise
	}
	return v, true
}
