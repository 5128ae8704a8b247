package video

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
)

func (d webcamDevice) path() string {
	if d.name != "" {
		return d.name
	}
	return "/dev/video" + strconv.Itoa(d.index)
}

func (d webcamDevice) describe() string { return d.path() }

// inputArgs opens a V4L2 device. A missing device is reported before
// ffmpeg runs, in plain words.
func (d webcamDevice) inputArgs(context.Context) ([]string, error) {
	p := d.path()
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("device %s not found (is the camera plugged in?)", p)
		}
		return nil, fmt.Errorf("device %s: %w", p, err)
	}
	a := append([]string{"-f", "v4l2"}, d.captureOpts(0)...)
	return append(a, "-i", p), nil
}
