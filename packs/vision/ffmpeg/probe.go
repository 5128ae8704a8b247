package ffmpeg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packs/vision/frame"
)

// ProbeInfo is what ffprobe says about a file's first video stream.
type ProbeInfo struct {
	Width, Height int
	FPS           float64 // avg_frame_rate, else r_frame_rate; 0 when unknown
	Duration      float64 // seconds; 0 when unknown
	PixFmt        string  // the decoder's pixel format, e.g. "yuv420p"
}

// TransportFormat picks the pipe's pixel format for a stream decoding to
// pixFmt: yuv420p when that loses nothing (4:2:0 8-bit, the usual camera
// and H.264 output: no conversion, half the bytes), bgr24 otherwise (4:4:4
// or 4:2:2 chroma would be thinned by a trip through yuv420p).
func TransportFormat(pixFmt string) string {
	switch pixFmt {
	case "yuv420p", "yuvj420p", "nv12", "nv21":
		return frame.PixFmtYUV420P
	}
	return frame.PixFmtBGR24
}

// ProbeFile checks with ffprobe that path holds a decodable video stream.
// Errors say what is wrong with the file in ffprobe's words.
func ProbeFile(ctx context.Context, path string) (ProbeInfo, error) {
	bin, err := exec.LookPath("ffprobe")
	if err != nil {
		return ProbeInfo{}, ErrFFprobeNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,pix_fmt,avg_frame_rate,r_frame_rate:format=duration",
		"-of", "json", "file:"+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if msg == "" {
			msg = err.Error()
		}
		return ProbeInfo{}, fmt.Errorf("not a readable video: %s", msg)
	}
	var doc struct {
		Streams []struct {
			Width  int    `json:"width"`
			Height int    `json:"height"`
			Avg    string `json:"avg_frame_rate"`
			Real   string `json:"r_frame_rate"`
			PixFmt string `json:"pix_fmt"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return ProbeInfo{}, fmt.Errorf("read ffprobe output: %w", err)
	}
	if len(doc.Streams) == 0 || doc.Streams[0].Width <= 0 || doc.Streams[0].Height <= 0 {
		return ProbeInfo{}, errors.New("not a video: no video stream")
	}
	st := doc.Streams[0]
	info := ProbeInfo{Width: st.Width, Height: st.Height, FPS: ratio(st.Avg), PixFmt: st.PixFmt}
	if info.FPS == 0 {
		info.FPS = ratio(st.Real)
	}
	info.Duration, _ = strconv.ParseFloat(doc.Format.Duration, 64)
	return info, nil
}

// ratio parses "24000/1001"; 0 for "0/0" or junk.
func ratio(s string) float64 {
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	a, err1 := strconv.ParseFloat(n, 64)
	b, err2 := strconv.ParseFloat(d, 64)
	if err1 != nil || err2 != nil || b == 0 {
		return 0
	}
	return a / b
}
