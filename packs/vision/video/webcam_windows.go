package video

import (
	"github.com/schnitzel-stream/schnitzel/packs/vision/ffmpeg"

	"context"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

func (d webcamDevice) describe() string {
	if d.name != "" {
		return "dshow:" + d.name
	}
	return "dshow:#" + strconv.Itoa(d.index)
}

// inputArgs opens a DirectShow device. DirectShow opens devices by name,
// so an index is looked up in ffmpeg's device list on every attempt (a
// camera plugged in later is found).
func (d webcamDevice) inputArgs(ctx context.Context) ([]string, error) {
	name := d.name
	if name == "" {
		bin, err := exec.LookPath("ffmpeg")
		if err != nil {
			return nil, ffmpeg.ErrFFmpegNotFound
		}
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		// ffmpeg exits non-zero here by design ("dummy" is no device); the
		// list is on stderr.
		out, _ := exec.CommandContext(lctx, bin, "-hide_banner", "-list_devices", "true", "-f", "dshow", "-i", "dummy").CombinedOutput()
		names := parseDshowDevices(string(out))
		if d.index >= len(names) {
			return nil, fmt.Errorf("no DirectShow video device at index %d (found %d: %q)", d.index, len(names), names)
		}
		name = names[d.index]
	}
	a := append([]string{"-f", "dshow"}, d.captureOpts(0)...)
	return append(a, "-i", "video="+name), nil
}
