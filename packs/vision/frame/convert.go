package frame

// YUV 4:2:0 to packed BGR in 16.16 fixed point, the way swscale's C path
// does it (ffmpeg's own bgr24 output differs by at most a unit or two in
// rounding). Coefficients: ITU-R BT.601 / BT.709, limited ("tv": Y 16-235,
// C 16-240) or full ("pc", JPEG) range.

type coeffs struct {
	yOff           int32 // subtracted from Y
	y              int32 // Y scale
	rv, gu, gv, bu int32 // chroma contributions (G terms are subtracted)
}

var (
	bt601Limited = coeffs{16, 76309, 104597, 25675, 53279, 132201}
	bt709Limited = coeffs{16, 76309, 117489, 13975, 34925, 138438}
	bt601Full    = coeffs{0, 65536, 91881, 22554, 46802, 116130}
	bt709Full    = coeffs{0, 65536, 103206, 12277, 30679, 121609}
)

func coeffsFor(c Color) *coeffs {
	switch {
	case c.BT709 && c.FullRange:
		return &bt709Full
	case c.BT709:
		return &bt709Limited
	case c.FullRange:
		return &bt601Full
	}
	return &bt601Limited
}

func clamp8(v int32) byte {
	v >>= 16
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return byte(v)
}

// yuv420ToBGR converts a packed yuv420p buffer (Y, then Cb, then Cr planes,
// chroma rows of ceil(w/2)) of a w x h picture into dst (3*w*h bytes).
func yuv420ToBGR(dst, src []byte, w, h int, c Color) {
	k := coeffsFor(c)
	cw, ch := chromaSize(w, h)
	yPlane := src[:w*h]
	uPlane := src[w*h : w*h+cw*ch]
	vPlane := src[w*h+cw*ch : w*h+2*cw*ch]
	const half = 1 << 15
	for y := 0; y < h; y++ {
		yr := yPlane[y*w : y*w+w]
		ur := uPlane[(y/2)*cw : (y/2)*cw+cw]
		vr := vPlane[(y/2)*cw : (y/2)*cw+cw]
		out := dst[y*3*w : y*3*w+3*w]
		for x := 0; x < w; x++ {
			u := int32(ur[x>>1]) - 128
			v := int32(vr[x>>1]) - 128
			yy := (int32(yr[x])-k.yOff)*k.y + half
			o := out[3*x : 3*x+3 : 3*x+3]
			o[0] = clamp8(yy + k.bu*u)
			o[1] = clamp8(yy - k.gu*u - k.gv*v)
			o[2] = clamp8(yy + k.rv*v)
		}
	}
}
