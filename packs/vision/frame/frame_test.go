package frame

import (
	"image/color"
	"runtime"
	"sync"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func TestAtAndImage(t *testing.T) {
	f := New(3, 2)
	// Pixel (2, 1) is B=10 G=20 R=30; everything else stays zero.
	i := 1*f.Stride + 3*2
	f.Raw()[i], f.Raw()[i+1], f.Raw()[i+2] = 10, 20, 30
	if b, g, r := f.At(2, 1); b != 10 || g != 20 || r != 30 {
		t.Fatalf("At(2,1) = %d,%d,%d, want 10,20,30", b, g, r)
	}
	img := f.Image()
	if got := img.Bounds().Dx()*10 + img.Bounds().Dy(); got != 32 {
		t.Fatalf("bounds %v", img.Bounds())
	}
	if got := color.RGBAModel.Convert(img.At(2, 1)).(color.RGBA); got != (color.RGBA{R: 30, G: 20, B: 10, A: 255}) {
		t.Fatalf("Image().At(2,1) = %v", got)
	}
	if got := color.RGBAModel.Convert(img.At(0, 0)).(color.RGBA); got != (color.RGBA{A: 255}) {
		t.Fatalf("Image().At(0,0) = %v", got)
	}
}

func TestAtOutside(t *testing.T) {
	f := New(2, 2)
	for _, xy := range [][2]int{{-1, 0}, {2, 0}, {0, 2}, {0, -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("At(%d,%d) did not panic", xy[0], xy[1])
				}
			}()
			f.At(xy[0], xy[1])
		}()
	}
}

func TestSummary(t *testing.T) {
	f := New(1280, 720)
	f.Index = 12
	if got := f.String(); got != "<frame 1280x720 bgr24 #12>" {
		t.Fatalf("String = %q", got)
	}
	m := packet.MapOf("frame", f, "frame_idx", int64(12))
	if got := string(packet.AppendJSON(nil, m, packet.Spaced)); got != `{"frame": "<frame 1280x720 bgr24 #12>", "frame_idx": 12}` {
		t.Fatalf("JSON = %s", got)
	}
}

func TestPoolReuseAfterLastRelease(t *testing.T) {
	p := NewPool(4, 4)
	a := p.Get()
	a.Retain() // two owners
	a.Release()
	if a.Raw() == nil {
		t.Fatal("buffer returned while a reference was still held")
	}
	a.Raw()[0] = 7
	a.Release()
	if a.Raw() != nil {
		t.Fatal("pixels not cleared after the last Release")
	}
	b := p.Get()
	if len(b.Raw()) != 48 || b.Width != 4 || b.Height != 4 || b.Stride != 12 || b.PixFmt != "bgr24" {
		t.Fatalf("Get: %dx%d stride %d len %d %s", b.Width, b.Height, b.Stride, len(b.Raw()), b.PixFmt)
	}
	if p.Allocs() != 1 || b.Raw()[0] != 7 {
		t.Fatalf("allocs = %d, pix[0] = %d: buffer not reused", p.Allocs(), b.Raw()[0])
	}
}

func TestPoolBoundedUnderChurn(t *testing.T) {
	p := NewPool(64, 64)
	for i := 0; i < 1000; i++ {
		f := p.Get()
		f.Raw()[0] = byte(i)
		f.Release()
	}
	if n := p.Allocs(); n != 1 {
		t.Fatalf("allocs = %d for 1000 sequential frames, want 1", n)
	}
	// More frames in flight than the pool owns: the surplus are plain
	// allocations left to the collector; the pool does not grow.
	var held []*Frame
	for i := 0; i < p.raw.max+10; i++ {
		held = append(held, p.Get())
	}
	for _, f := range held {
		f.Release()
	}
	if n, free := p.raw.owned(); n != p.raw.max || free != p.raw.max {
		t.Fatalf("pool owns %d buffers, %d free; want %d, all free", n, free, p.raw.max)
	}
}

// Downstream nodes never Release (package doc): frames they drop come back
// to the pool through the collector, so an every-frame chain reuses buffers.
func TestPoolReclaimsDroppedFrames(t *testing.T) {
	p := NewYUV420Pool(64, 48, Color{})
	n := 20 * p.raw.max
	for i := 0; i < n; i++ {
		f := p.Get()
		f.Raw()[0] = byte(i)
		_ = f.BGR() // the bgr24 buffers come back too
	}
	// Without reclaiming, every frame is an allocation.
	if a := p.Allocs(); a > int64(n/4) {
		t.Fatalf("%d allocations for %d dropped frames: buffers not reclaimed", a, n)
	}
	if owned, _ := p.bgr.owned(); owned > p.bgr.max {
		t.Fatalf("bgr buffers owned %d > max %d", owned, p.bgr.max)
	}
}

// A frame that is still referenced never has its buffer handed to another,
// whatever the collector does meanwhile.
func TestPoolNeverSharesLiveBuffers(t *testing.T) {
	p := NewPool(16, 16)
	seen := map[*byte]int{}
	var held []*Frame
	for i := 0; i < 3*p.raw.max; i++ {
		f := p.Get()
		if j, dup := seen[&f.Raw()[0]]; dup {
			t.Fatalf("frame %d got the buffer of live frame %d", i, j)
		}
		seen[&f.Raw()[0]] = i
		held = append(held, f)
		runtime.GC()
	}
	runtime.KeepAlive(held)
}

func TestMisuse(t *testing.T) {
	cases := map[string]func(){
		"double release": func() {
			f := New(1, 1)
			f.Release()
			f.Release()
		},
		"retain after release": func() {
			f := New(1, 1)
			f.Release()
			f.Retain()
		},
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			fn()
		})
	}
}

func BenchmarkImage720p(b *testing.B) {
	f := New(1280, 720)
	b.SetBytes(int64(len(f.Raw())))
	for b.Loop() {
		_ = f.Image()
	}
}

func TestYUV420Frame(t *testing.T) {
	// 3x3: odd sizes round chroma up (2x2 chroma planes).
	p := NewYUV420Pool(3, 3, Color{})
	f := p.Get()
	if got := len(f.Raw()); got != 9+2*4 {
		t.Fatalf("raw len %d, want 17", got)
	}
	raw := f.Raw()
	for i := range 9 {
		raw[i] = 235 // limited-range white
	}
	for i := 9; i < 17; i++ {
		raw[i] = 128 // no chroma
	}
	raw[0] = 16 // black top-left
	if b, g, r := f.At(0, 0); b != 0 || g != 0 || r != 0 {
		t.Errorf("black: %d,%d,%d", b, g, r)
	}
	if b, g, r := f.At(2, 2); b != 255 || g != 255 || r != 255 {
		t.Errorf("white: %d,%d,%d", b, g, r)
	}
	if y := f.YCbCr(); y == nil || y.Bounds().Dx() != 3 || len(y.Cb) != 4 || y.CStride != 2 {
		t.Fatalf("YCbCr view %+v", y)
	}
	if f.String() != "<frame 3x3 yuv420p #0>" {
		t.Errorf("String %q", f.String())
	}
	bgr := f.BGR()
	f.Release()
	if f.HasPixels() || f.BGR() != nil || f.Raw() != nil {
		t.Fatal("pixels still reachable after the last Release")
	}
	// Both buffers go back to the pool and are reused.
	g := p.Get()
	if p.Allocs() != 1 || &g.BGR()[0] != &bgr[0] {
		t.Fatalf("allocs %d; bgr buffer reused: %v", p.Allocs(), &g.BGR()[0] == &bgr[0])
	}
}

func TestBGRConcurrentFirstUse(t *testing.T) {
	f := NewYUV420Pool(64, 48, Color{BT709: true}).Get()
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = f.BGR() }()
	}
	wg.Wait()
	for i := range got {
		if &got[i][0] != &got[0][0] {
			t.Fatal("BGR converted more than once")
		}
	}
}

func BenchmarkYUV420ToBGR720p(b *testing.B) {
	src := make([]byte, FrameSize(PixFmtYUV420P, 1280, 720))
	dst := make([]byte, 3*1280*720)
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		yuv420ToBGR(dst, src, 1280, 720, Color{})
	}
}

func TestSizeBytes(t *testing.T) {
	p := NewYUV420Pool(64, 48, Color{})
	f := p.Get()
	if got := f.SizeBytes(); got != 64*48*3/2 {
		t.Fatalf("yuv420p 64x48: %d bytes", got)
	}
	f.BGR()
	if got := f.SizeBytes(); got != 64*48*3/2+64*48*3 {
		t.Fatalf("after BGR: %d bytes, want the native buffer plus the BGR copy", got)
	}
	if got := New(5, 3).SizeBytes(); got != 45 {
		t.Fatalf("bgr24 5x3: %d bytes", got)
	}
	pk := &packet.Packet{Payload: packet.MapOf("frame", f, "frame_idx", int64(0)), Meta: packet.MapOf("frame", f)}
	if got := packet.Weight(pk); got != 2*int64(f.SizeBytes()) {
		t.Fatalf("packet weight %d: payload and meta each count the frame", got)
	}
}
