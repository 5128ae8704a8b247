package video

import (
	"context"
	"strconv"
)

func (d webcamDevice) spec() string {
	if d.name != "" {
		return d.name
	}
	return strconv.Itoa(d.index)
}

func (d webcamDevice) describe() string { return "avfoundation:" + d.spec() }

// inputArgs opens an AVFoundation device, video only. AVFoundation rejects
// ffmpeg's default 29.97 fps on most cameras, so 30 is asked unless set.
func (d webcamDevice) inputArgs(context.Context) ([]string, error) {
	a := append([]string{"-f", "avfoundation"}, d.captureOpts(30)...)
	return append(a, "-i", d.spec()+":none"), nil
}
