package legacy

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// probeFPS returns a video file's frame rate as OpenCV's CAP_PROP_FPS
// reports it (avg_frame_rate, else r_frame_rate; 0 when unknown). The
// sampler divides by it, so it must be the exact rational (24/1, 30000/1001).
func probeFPS(path string) (float64, error) {
	bin, err := exec.LookPath("ffprobe")
	if err != nil {
		return 0, fmt.Errorf("video file %s: ffprobe not found in PATH (install ffmpeg)", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=avg_frame_rate,r_frame_rate", "-of", "json", "file:"+path).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return 0, fmt.Errorf("video file %s: not a readable video: %s", path, msg)
	}
	var doc struct {
		Streams []struct {
			Avg  string `json:"avg_frame_rate"`
			Real string `json:"r_frame_rate"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, fmt.Errorf("video file %s: ffprobe output: %w", path, err)
	}
	if len(doc.Streams) == 0 {
		return 0, fmt.Errorf("video file %s: no video stream", path)
	}
	if f := rational(doc.Streams[0].Avg); f > 0 {
		return f, nil
	}
	return rational(doc.Streams[0].Real), nil
}

// rational parses "num/den" (or a plain number); 0 when unusable.
func rational(s string) float64 {
	num, den, found := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0
	}
	if !found {
		return n
	}
	d, err := strconv.ParseFloat(den, 64)
	if err != nil || d == 0 {
		return 0
	}
	return n / d
}
