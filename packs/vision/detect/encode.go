package detect

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
)

// Encoder turns frames into request images, reusing its buffers from
// frame to frame (one Encoder per node; not safe for concurrent use).
type Encoder struct {
	Format  string // FormatJPEG or FormatBGR24
	Quality int    // JPEG quality 1..100

	rgba *image.RGBA
	buf  bytes.Buffer
}

// Encode returns the image bytes of f in the encoder's format. The slice
// is valid until the next call.
func (e *Encoder) Encode(f *frame.Frame) ([]byte, error) {
	if !f.HasPixels() {
		return nil, fmt.Errorf("frame has no pixels")
	}
	switch e.Format {
	case FormatBGR24:
		return f.BGR()[:3*f.Width*f.Height], nil // packed already: no copy
	case FormatJPEG:
		if e.rgba == nil || e.rgba.Rect.Dx() != f.Width || e.rgba.Rect.Dy() != f.Height {
			e.rgba = image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
		}
		f.CopyRGBA(e.rgba)
		e.buf.Reset()
		q := e.Quality
		if q < 1 || q > 100 {
			q = 90
		}
		if err := jpeg.Encode(&e.buf, e.rgba, &jpeg.Options{Quality: q}); err != nil {
			return nil, fmt.Errorf("jpeg: %w", err)
		}
		return e.buf.Bytes(), nil
	}
	return nil, fmt.Errorf("unknown image format %q", e.Format)
}
