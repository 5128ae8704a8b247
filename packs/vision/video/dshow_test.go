package video

import (
	"reflect"
	"testing"
)

func TestParseDshowDevices(t *testing.T) {
	newer := `[dshow @ 000001] "Integrated Camera" (video)
[dshow @ 000001]   Alternative name "@device_pnp_\\?\usb#vid_04f2"
[dshow @ 000001] "Microphone Array (Realtek)" (audio)
[dshow @ 000001]   Alternative name "@device_cm_{33D9A762}"
[dshow @ 000001] "OBS Virtual Camera" (video)
dummy: Immediate exit requested`
	older := `[dshow @ 0000] DirectShow video devices (some may be both video and audio devices)
[dshow @ 0000]  "USB2.0 HD UVC WebCam"
[dshow @ 0000]     Alternative name "@device_pnp_\\?\usb#vid_13d3"
[dshow @ 0000] DirectShow audio devices
[dshow @ 0000]  "Microphone (Realtek)"
[dshow @ 0000]     Alternative name "@device_cm_{33D9A762}"`
	cases := map[string][]string{
		newer: {"Integrated Camera", "OBS Virtual Camera"},
		older: {"USB2.0 HD UVC WebCam"},
		"":    nil,
	}
	for in, want := range cases {
		if got := parseDshowDevices(in); !reflect.DeepEqual(got, want) {
			t.Errorf("parseDshowDevices = %q, want %q", got, want)
		}
	}
}
