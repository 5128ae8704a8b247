// Package frame holds the in-process video frame payload of the vision pack:
// packed 8-bit BGR pixels (OpenCV's layout, so pixel maths ported from
// upstream reads the same bytes) with the frame's position in its stream.
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
// released is not leaked: the garbage collector reclaims it like any other
// value, and the pool simply allocates a fresh buffer next time.
//
// The runtime hands one *packet.Packet to every branch of a fan-out without
// taking references, so a node that receives a frame packet does not own a
// reference and must not Release it (doing so could recycle pixels another
// branch is still reading). That is the robust default this package is
// built for: downstream nodes never Release, and memory stays flat because
// the collector reclaims frames nobody references any more. Sources Release
// the frames they decoded but never handed over (skipped live frames, a
// packet refused at shutdown), which is where reuse pays off. Pix stays valid
// for as long as you hold the *Frame and nobody broke that rule.
package frame

import (
	"fmt"
	"image"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// PixFmtBGR24 is the only pixel format sources produce: 3 bytes per pixel,
// blue, green, red.
const PixFmtBGR24 = "bgr24"

// Frame is one decoded picture.
type Frame struct {
	Width, Height, Stride int     // Stride = bytes per row
	PixFmt                string  // "bgr24"
	Pix                   []byte  // len >= Stride*Height; pooled: valid until Release
	Index                 int64   // frame index in the stream (0-based)
	PTS                   float64 // seconds since stream start (live sources: since this connection's start)

	pool *Pool
	refs atomic.Int32
}

// New returns an unpooled frame of the given size with one reference.
func New(w, h int) *Frame {
	f := &Frame{Width: w, Height: h, Stride: 3 * w, PixFmt: PixFmtBGR24, Pix: make([]byte, 3*w*h)}
	f.refs.Store(1)
	return f
}

// Retain adds a reference, for a holder that will Release it later (a
// fan-out that hands the frame to several owners). Retaining a frame that
// was already fully released is a bug and panics.
func (f *Frame) Retain() {
	if f.refs.Add(1) <= 1 {
		panic("frame: Retain on a released frame")
	}
}

// Release drops a reference; the last one returns the pixel buffer to the
// frame's pool and clears Pix, so a late reader fails loudly instead of
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
	if f.pool != nil && f.Pix != nil {
		f.pool.put(f.Pix)
	}
	f.Pix = nil
}

// At returns the pixel at (x, y). It panics outside the frame, as slice
// indexing does.
func (f *Frame) At(x, y int) (b, g, r uint8) {
	if x < 0 || y < 0 || x >= f.Width || y >= f.Height {
		panic(fmt.Sprintf("frame: At(%d, %d) outside %dx%d", x, y, f.Width, f.Height))
	}
	i := y*f.Stride + 3*x
	p := f.Pix[i : i+3 : i+3]
	return p[0], p[1], p[2]
}

// Image returns an RGBA copy of the frame. It is a copy, not a view, so it
// stays valid after Release, and image/jpeg and image/png take their fast
// path for *image.RGBA.
func (f *Frame) Image() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	for y := 0; y < f.Height; y++ {
		src := f.Pix[y*f.Stride : y*f.Stride+3*f.Width]
		dst := img.Pix[y*img.Stride : y*img.Stride+4*f.Width]
		for i, j := 0, 0; i < len(src); i, j = i+3, j+4 {
			dst[j], dst[j+1], dst[j+2], dst[j+3] = src[i+2], src[i+1], src[i], 0xff
		}
	}
	return img
}

// AppendPyJSON writes the frame as a short JSON string summary, never its
// pixels, so PrintSink and reports stay readable (upstream printed the
// numpy array's str()).
func (f *Frame) AppendPyJSON(b []byte, _ packet.Style) []byte {
	return packet.AppendString(b, f.String())
}

// String is "<frame 1280x720 bgr24 #12>".
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

// maxFree bounds the buffers a pool keeps for reuse: enough for a decoder
// that reads ahead while a frame or two are in flight, few enough that an
// idle pool of 1080p frames holds about 25 MB.
const maxFree = 4

// Pool hands out frames of one size and takes their buffers back on the
// last Release. It keeps at most maxFree idle buffers (more are left to
// the garbage collector), so it never grows past what is in use. A plain
// free list rather than a sync.Pool: reuse must not depend on GC timing.
// Safe for concurrent use.
type Pool struct {
	w, h, size int
	mu         sync.Mutex
	free       [][]byte
	allocs     atomic.Int64
}

// NewPool returns a pool of w x h bgr24 frames.
func NewPool(w, h int) *Pool {
	if w <= 0 || h <= 0 {
		panic(fmt.Sprintf("frame: NewPool(%d, %d): size must be positive", w, h))
	}
	return &Pool{w: w, h: h, size: 3 * w * h}
}

// Get returns a frame with one reference; its pixels are unspecified (a
// reused buffer keeps an older frame's pixels until overwritten).
func (p *Pool) Get() *Frame {
	var pix []byte
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		pix, p.free[n-1] = p.free[n-1], nil
		p.free = p.free[:n-1]
	}
	p.mu.Unlock()
	if pix == nil {
		pix = make([]byte, p.size)
		p.allocs.Add(1)
	}
	f := &Frame{Width: p.w, Height: p.h, Stride: 3 * p.w, PixFmt: PixFmtBGR24, Pix: pix, pool: p}
	f.refs.Store(1)
	return f
}

// Size returns the frame size of the pool.
func (p *Pool) Size() (w, h int) { return p.w, p.h }

// Allocs returns how many buffers the pool has allocated (reuse shows as
// Allocs growing slower than frames handed out).
func (p *Pool) Allocs() int64 { return p.allocs.Load() }

func (p *Pool) put(pix []byte) {
	if len(pix) != p.size {
		return
	}
	p.mu.Lock()
	if len(p.free) < maxFree {
		p.free = append(p.free, pix)
	}
	p.mu.Unlock()
}

var _ packet.Marshaler = (*Frame)(nil)
