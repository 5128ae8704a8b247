package frame

import (
	"image/color"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func TestAtAndImage(t *testing.T) {
	f := New(3, 2)
	// Pixel (2, 1) is B=10 G=20 R=30; everything else stays zero.
	i := 1*f.Stride + 3*2
	f.Pix[i], f.Pix[i+1], f.Pix[i+2] = 10, 20, 30
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
	if a.Pix == nil {
		t.Fatal("buffer returned while a reference was still held")
	}
	a.Pix[0] = 7
	a.Release()
	if a.Pix != nil {
		t.Fatal("Pix not cleared after the last Release")
	}
	b := p.Get()
	if len(b.Pix) != 48 || b.Width != 4 || b.Height != 4 || b.Stride != 12 || b.PixFmt != "bgr24" {
		t.Fatalf("Get: %dx%d stride %d len %d %s", b.Width, b.Height, b.Stride, len(b.Pix), b.PixFmt)
	}
	if p.Allocs() != 1 || b.Pix[0] != 7 {
		t.Fatalf("allocs = %d, pix[0] = %d: buffer not reused", p.Allocs(), b.Pix[0])
	}
}

func TestPoolBoundedUnderChurn(t *testing.T) {
	p := NewPool(64, 64)
	for i := 0; i < 1000; i++ {
		f := p.Get()
		f.Pix[0] = byte(i)
		f.Release()
	}
	if n := p.Allocs(); n != 1 {
		t.Fatalf("allocs = %d for 1000 sequential frames, want 1", n)
	}
	// More frames in flight than the free list keeps: the surplus goes to
	// the collector instead of growing the pool.
	var held []*Frame
	for i := 0; i < 10; i++ {
		held = append(held, p.Get())
	}
	for _, f := range held {
		f.Release()
	}
	if len(p.free) != maxFree {
		t.Fatalf("free list holds %d, want %d", len(p.free), maxFree)
	}
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
	b.SetBytes(int64(len(f.Pix)))
	for b.Loop() {
		_ = f.Image()
	}
}
