// Package frame holds the in-process video frame payload of the vision pack:
// the pixels as decoded (yuv420p from video sources), packed 8-bit BGR on
// demand (OpenCV's layout, so pixel maths ported from upstream reads the
// same bytes), and the frame's position in its stream.
//
// A frame packet (kind "frame") carries a *packet.Map payload
// {"frame": *Frame, "frame_idx": int64}, as upstream's video sources do.
//
// # Ownership and reuse
//
// Frames come from a Pool; a frame's pixel buffer goes back to its pool when
// its reference count drops to zero. The rule is the usual one for counted
// references: call Release only for a reference you own, that is one you got
// from Pool.Get or took with Retain. A frame whose references are never
// released is not leaked: once the garbage collector finds it unreachable,
// a cleanup gives its buffers back to the pool, so a chain that drops every
// frame downstream still reuses a few dozen buffers instead of allocating,
// zeroing and faulting in a fresh one per frame. Pixel slices (Raw, BGR,
// YCbCr) are therefore valid only while you hold the *Frame they came from.
//
// The runtime hands one *packet.Packet to every branch of a fan-out without
// taking references, so a node that receives a frame packet does not own a
// reference and must not Release it (doing so could recycle pixels another
// branch is still reading). That is the robust default this package is
// built for: downstream nodes never Release, and memory stays flat because
// the collector reclaims frames nobody references any more. Sources Release
// the frames they decoded but never handed over (skipped live frames, a
// packet refused at shutdown), which is where reuse pays off. Raw and BGR
// stay valid for as long as you hold the *Frame and nobody broke that rule.
package frame

import (
	"fmt"
	"image"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Pixel formats of a frame's native buffer.
const (
	// PixFmtBGR24 is packed 8-bit blue, green, red: OpenCV's layout and
	// what BGR returns.
	PixFmtBGR24 = "bgr24"
	// PixFmtYUV420P is planar Y, then Cb, then Cr at half resolution in
	// both directions (rows of ceil(W/2), ceil(H/2) rows): what H.264 and
	// most camera codecs decode to. Video sources ship it as is, half the
	// bytes of bgr24 and no colour conversion in ffmpeg; BGR converts on
	// first use, so a graph that never reads pixels never pays for it.
	PixFmtYUV420P = "yuv420p"
)

// Color says how a yuv420p frame's samples map to RGB.
type Color struct {
	BT709     bool // matrix: BT.709 (HD) when set, else BT.601
	FullRange bool // samples use 0-255 (JPEG, "pc"), else 16-235/240 ("tv")
}

// Frame is one decoded picture. Its pixels live in a native buffer (Raw,
// in PixFmt); BGR gives them as packed bgr24 whatever the native format.
type Frame struct {
	Width, Height int
	Stride        int     // bytes per row of BGR(): 3*Width
	PixFmt        string  // native format: PixFmtBGR24 or PixFmtYUV420P
	Color         Color   // for yuv420p frames
	Index         int64   // frame index in the stream (0-based)
	PTS           float64 // seconds since stream start (live sources: since this connection's start)

	raw     []byte // native pixels; pooled: valid until the last Release
	bgr     []byte // converted on first BGR call (yuv420p frames)
	bgrOnce sync.Once
	hasBGR  atomic.Bool // bgr was converted (for SizeBytes, read concurrently)
	pool    *Pool
	slots   *slots // the pool buffers this frame holds, for Release and the cleanup
	refs    atomic.Int32
}

// slots names the pool buffers a frame holds (-1: none, or a buffer the
// pool does not own). It is the frame's cleanup argument, so it must never
// point back at the Frame.
type slots struct {
	pool     *Pool
	raw, bgr atomic.Int32
}

// give returns the buffers to the pool, once: by the last Release, or by
// the cleanup of a frame that was dropped unreleased (collected).
func (s *slots) give(collected bool) {
	if i := s.raw.Swap(-1); i >= 0 {
		s.pool.raw.give(i, collected)
	}
	if i := s.bgr.Swap(-1); i >= 0 {
		s.pool.bgr.give(i, collected)
	}
}

func collectSlots(s *slots) { s.give(true) }

// New returns an unpooled bgr24 frame of the given size (all black) with
// one reference.
func New(w, h int) *Frame {
	f := &Frame{Width: w, Height: h, Stride: 3 * w, PixFmt: PixFmtBGR24, raw: make([]byte, 3*w*h)}
	f.refs.Store(1)
	return f
}

// HasPixels reports whether the frame holds a whole picture (false for a
// zero-size frame or after the last Release).
func (f *Frame) HasPixels() bool {
	return f != nil && f.Width > 0 && f.Height > 0 && f.raw != nil && len(f.raw) >= FrameSize(f.PixFmt, f.Width, f.Height)
}

// Raw returns the native pixel buffer (layout by PixFmt); nil once the
// frame was released.
func (f *Frame) Raw() []byte { return f.raw }

// BGR returns the pixels as packed bgr24, Stride bytes a row. For a bgr24
// frame that is the native buffer itself (writes show); a yuv420p frame is
// converted once, on the first call, and later calls (from any goroutine)
// share the result, which callers must treat as read-only. Nil once the
// frame was released.
func (f *Frame) BGR() []byte {
	if f.PixFmt == PixFmtBGR24 {
		return f.raw
	}
	f.bgrOnce.Do(func() {
		if f.raw == nil {
			return
		}
		var dst []byte
		if f.pool != nil {
			var slot int32
			dst, slot = f.pool.bgr.take(nil)
			f.slots.bgr.Store(slot)
		} else {
			dst = make([]byte, 3*f.Width*f.Height)
		}
		yuv420ToBGR(dst, f.raw, f.Width, f.Height, f.Color)
		f.bgr = dst
		f.hasBGR.Store(true)
	})
	return f.bgr
}

// YCbCr returns a yuv420p frame's planes as an image view (no copy), nil
// for other formats or a released frame. The view's sample values follow
// f.Color, not JPEG's full-range BT.601, unless f.Color.FullRange and not
// BT709.
func (f *Frame) YCbCr() *image.YCbCr {
	if f.PixFmt != PixFmtYUV420P || f.raw == nil {
		return nil
	}
	cw, ch := chromaSize(f.Width, f.Height)
	ys := f.Width * f.Height
	cs := cw * ch
	return &image.YCbCr{
		Y: f.raw[:ys:ys], Cb: f.raw[ys : ys+cs : ys+cs], Cr: f.raw[ys+cs : ys+2*cs : ys+2*cs],
		YStride: f.Width, CStride: cw,
		SubsampleRatio: image.YCbCrSubsampleRatio420,
		Rect:           image.Rect(0, 0, f.Width, f.Height),
	}
}

// Retain adds a reference, for a holder that will Release it later (a
// fan-out that hands the frame to several owners). Retaining a frame that
// was already fully released is a bug and panics.
func (f *Frame) Retain() {
	if f.refs.Add(1) <= 1 {
		panic("frame: Retain on a released frame")
	}
}

// Release drops a reference; the last one returns the pixel buffers to the
// frame's pool and clears them, so a late reader fails loudly instead of
// seeing another frame's pixels. Releasing more often than referenced
// panics.
func (f *Frame) Release() {
	n := f.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("frame: Release of a frame with no references")
	}
	// Settle a conversion racing with the release before taking buffers.
	f.bgrOnce.Do(func() {})
	if f.slots != nil {
		f.slots.give(false)
	}
	f.raw, f.bgr = nil, nil
}

// At returns the pixel at (x, y). It panics outside the frame, as slice
// indexing does.
func (f *Frame) At(x, y int) (b, g, r uint8) {
	if x < 0 || y < 0 || x >= f.Width || y >= f.Height {
		panic(fmt.Sprintf("frame: At(%d, %d) outside %dx%d", x, y, f.Width, f.Height))
	}
	i := y*f.Stride + 3*x
	p := f.BGR()[i : i+3 : i+3]
	return p[0], p[1], p[2]
}

// Image returns an RGBA copy of the frame. It is a copy, not a view, so it
// stays valid after Release, and image/jpeg and image/png take their fast
// path for *image.RGBA.
func (f *Frame) Image() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	f.CopyRGBA(img)
	return img
}

// CopyRGBA writes the frame's pixels into dst, which must be f's size (a
// canvas or encoder buffer reused across frames).
func (f *Frame) CopyRGBA(dst *image.RGBA) {
	pix := f.BGR()
	for y := 0; y < f.Height; y++ {
		src := pix[y*f.Stride : y*f.Stride+3*f.Width]
		d := dst.Pix[y*dst.Stride : y*dst.Stride+4*f.Width]
		for i, j := 0, 0; i < len(src); i, j = i+3, j+4 {
			d[j], d[j+1], d[j+2], d[j+3] = src[i+2], src[i+1], src[i], 0xff
		}
	}
}

// SizeBytes is the memory the frame's pixels hold: the native buffer, plus
// the BGR copy once converted (packet.Sized: the runtime bounds inboxes of
// frame graphs by it).
func (f *Frame) SizeBytes() int {
	n := FrameSize(f.PixFmt, f.Width, f.Height)
	if f.hasBGR.Load() {
		n += 3 * f.Width * f.Height
	}
	return n
}

// LocalOnly marks a frame as in-process only (packet.Local): a frame that a
// detector hands on in meta is left out when the packet is written out.
func (f *Frame) LocalOnly() {}

// AppendPyJSON writes the frame as a short JSON string summary, never its
// pixels, so PrintSink and reports stay readable (upstream printed the
// numpy array's str()).
func (f *Frame) AppendPyJSON(b []byte, _ packet.Style) []byte {
	return packet.AppendString(b, f.String())
}

// String is "<frame 1280x720 yuv420p #12>" (the native format).
func (f *Frame) String() string {
	b := make([]byte, 0, 40)
	b = append(b, "<frame "...)
	b = strconv.AppendInt(b, int64(f.Width), 10)
	b = append(b, 'x')
	b = strconv.AppendInt(b, int64(f.Height), 10)
	b = append(b, ' ')
	b = append(b, f.PixFmt...)
	b = append(b, " #"...)
	b = strconv.AppendInt(b, f.Index, 10)
	return string(append(b, '>'))
}

// poolBytes bounds the buffers a pool owns, per kind (native, bgr24): at
// least minOwned and at most maxOwned buffers. Enough for the frames a
// decoder reads ahead plus those in the inboxes of a chain (each inbox
// holds up to 32 MiB of frames by default); more frames in flight than
// that get plain allocations, which the collector frees.
const (
	poolBytes = 48 << 20
	minOwned  = 4
	maxOwned  = 64
)

// Pool hands out frames of one size and format. It owns a bounded set of
// buffers (native ones, and bgr24 ones for converted yuv420p frames); a
// frame gives its buffers back on its last Release, or through a cleanup
// once the collector finds the frame unreachable. Safe for concurrent use.
type Pool struct {
	w, h     int
	pixFmt   string
	color    Color
	raw, bgr slab
	allocs   atomic.Int64 // buffers allocated: owned ones created and plain ones
}

// slab is the bounded set of buffers of one size a pool owns, each in use
// by a frame or free. When every owned buffer is out, frames dropped
// unreleased may be waiting for the collector: take forces a collection
// then, backing off while collections find nothing (frames really held, a
// slow node's full inbox), and falls back to a plain allocation.
type slab struct {
	mu        sync.Mutex
	size, max int
	bufs      [][]byte // owned; the index is the slot
	free      []int32
	misses    int // plain allocations since the last forced collection
	backoff   int // misses to allow before forcing the next one
	collected int // buffers given back by cleanups since the last forced collection
}

func newSlab(size int) slab {
	return slab{size: size, max: min(maxOwned, max(minOwned, poolBytes/max(1, size)))}
}

// take returns a buffer and its slot (-1: a plain allocation). allocs, if
// set, counts fresh buffers.
func (l *slab) take(allocs *atomic.Int64) ([]byte, int32) {
	l.mu.Lock()
	if b, i, ok := l.pop(); ok {
		l.mu.Unlock()
		return b, i
	}
	if len(l.bufs) < l.max {
		b := make([]byte, l.size)
		l.bufs = append(l.bufs, b)
		i := int32(len(l.bufs) - 1)
		l.mu.Unlock()
		countAlloc(allocs)
		return b, i
	}
	force := l.misses >= l.backoff
	l.misses++
	if force {
		// Productive collections (a quarter of the buffers came back
		// since the last) keep forcing at once; idle ones back off.
		if l.collected >= l.max/4 {
			l.backoff = 0
		} else {
			l.backoff = min(256, max(1, 2*l.backoff))
		}
		l.misses, l.collected = 0, 0
	}
	l.mu.Unlock()
	if force {
		runtime.GC()
		runtime.Gosched() // let the cleanups run
		l.mu.Lock()
		b, i, ok := l.pop()
		l.mu.Unlock()
		if ok {
			return b, i
		}
	}
	countAlloc(allocs)
	return make([]byte, l.size), -1
}

func countAlloc(a *atomic.Int64) {
	if a != nil {
		a.Add(1)
	}
}

// pop takes a free slot; called with mu held.
func (l *slab) pop() ([]byte, int32, bool) {
	n := len(l.free)
	if n == 0 {
		return nil, -1, false
	}
	i := l.free[n-1]
	l.free = l.free[:n-1]
	return l.bufs[i], i, true
}

// give marks slot i free again.
func (l *slab) give(i int32, collected bool) {
	l.mu.Lock()
	l.free = append(l.free, i)
	if collected {
		l.collected++
	}
	l.mu.Unlock()
}

// owned reports how many buffers the slab owns and how many are free.
func (l *slab) owned() (n, free int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.bufs), len(l.free)
}

// NewPool returns a pool of w x h bgr24 frames.
func NewPool(w, h int) *Pool { return newPool(w, h, PixFmtBGR24, Color{}) }

// NewYUV420Pool returns a pool of w x h yuv420p frames with colour c.
func NewYUV420Pool(w, h int, c Color) *Pool { return newPool(w, h, PixFmtYUV420P, c) }

func newPool(w, h int, pixFmt string, c Color) *Pool {
	if w <= 0 || h <= 0 {
		panic(fmt.Sprintf("frame: NewPool(%d, %d): size must be positive", w, h))
	}
	return &Pool{w: w, h: h, pixFmt: pixFmt, color: c,
		raw: newSlab(FrameSize(pixFmt, w, h)), bgr: newSlab(3 * w * h)}
}

// FrameSize is the byte size of one w x h frame in pixFmt (0 if unknown).
func FrameSize(pixFmt string, w, h int) int {
	switch pixFmt {
	case PixFmtBGR24:
		return 3 * w * h
	case PixFmtYUV420P:
		cw, ch := chromaSize(w, h)
		return w*h + 2*cw*ch
	}
	return 0
}

func chromaSize(w, h int) (int, int) { return (w + 1) / 2, (h + 1) / 2 }

// Get returns a frame with one reference; its pixels are unspecified (a
// reused buffer keeps an older frame's pixels until overwritten).
func (p *Pool) Get() *Frame {
	pix, slot := p.raw.take(&p.allocs)
	sl := &slots{pool: p}
	sl.raw.Store(slot)
	sl.bgr.Store(-1)
	f := &Frame{Width: p.w, Height: p.h, Stride: 3 * p.w, PixFmt: p.pixFmt, Color: p.color, raw: pix, pool: p, slots: sl}
	f.refs.Store(1)
	runtime.AddCleanup(f, collectSlots, sl)
	return f
}

// Size returns the frame size of the pool.
func (p *Pool) Size() (w, h int) { return p.w, p.h }

// Format returns the pool's native pixel format and colour.
func (p *Pool) Format() (string, Color) { return p.pixFmt, p.color }

// Allocs returns how many native buffers the pool has allocated (reuse
// shows as Allocs growing slower than frames handed out).
func (p *Pool) Allocs() int64 { return p.allocs.Load() }

var _ packet.Marshaler = (*Frame)(nil)
