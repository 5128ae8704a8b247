package video

import "regexp"

// reSecret matches the password of a URL's userinfo. The authority part is
// greedy up to the last '@' before the path, as URL parsers split it, so a
// password containing '@' is masked whole.
var reSecret = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^/\s]*@`)

// maskURL hides passwords in URLs inside s: rtsp://user:pw@host/x becomes
// rtsp://user:***@host/x (upstream's mask_url form). It is applied to every
// URL we log and to ffmpeg's own messages, which quote the input URL.
func maskURL(s string) string { return reSecret.ReplaceAllString(s, "$1:***@") }
