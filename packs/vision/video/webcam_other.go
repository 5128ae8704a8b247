//go:build !linux && !darwin && !windows

package video

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
)

func (d webcamDevice) describe() string {
	if d.name != "" {
		return d.name
	}
	return "#" + strconv.Itoa(d.index)
}

func (d webcamDevice) inputArgs(context.Context) ([]string, error) {
	return nil, fmt.Errorf("webcam capture is not supported on %s (use an RTSP source)", runtime.GOOS)
}
