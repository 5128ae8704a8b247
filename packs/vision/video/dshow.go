package video

import (
	"regexp"
	"strings"
)

var (
	reDshowNew = regexp.MustCompile(`\] "(.+)" \((video|audio|none)\)`)
	reDshowOld = regexp.MustCompile(`\]  "(.+)"\s*$`)
)

// parseDshowDevices returns the DirectShow video device names from
// `ffmpeg -list_devices true -f dshow -i dummy`, in order. It reads both
// the current form (`"Name" (video)`) and the older one, where devices
// follow a "DirectShow video devices" header and alternative names
// ("@device_pnp_...") are listed under each.
func parseDshowDevices(out string) []string {
	var names []string
	section := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		switch {
		case strings.Contains(l, "DirectShow video devices"):
			section = "video"
			continue
		case strings.Contains(l, "DirectShow audio devices"):
			section = "audio"
			continue
		case strings.Contains(l, "Alternative name"):
			continue
		}
		if m := reDshowNew.FindStringSubmatch(l); m != nil {
			if m[2] == "video" {
				names = append(names, m[1])
			}
			continue
		}
		if m := reDshowOld.FindStringSubmatch(l); m != nil && section == "video" {
			names = append(names, m[1])
		}
	}
	return names
}
