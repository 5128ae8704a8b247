package ffmpeg

import (
	"strings"
	"testing"
)

func TestInputScript(t *testing.T) {
	s := &InputScript{URL: "rtsp://a:it's@cam/x", Opts: [][2]string{{"rtsp_transport", "tcp"}}}
	got, err := s.text()
	want := "ffconcat version 1.0\nfile 'rtsp://a:it'\\''s@cam/x'\noption rtsp_transport 'tcp'\n"
	if err != nil || got != want {
		t.Errorf("text() = %q, %v\nwant %q", got, err, want)
	}
	for _, bad := range []string{"rtsp://cam/x\nfile '/etc/passwd'", "rtsp://cam/x\r", "rtsp://cam/\x00"} {
		if _, err := (&InputScript{URL: bad}).text(); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("%q: err = %v, want a control character refused", bad, err)
		}
	}
}

func TestInputScriptNeedsFFmpeg5ForOptions(t *testing.T) {
	withOpts := &InputScript{URL: "rtsp://cam/x", Opts: [][2]string{{"rtsp_transport", "tcp"}}}
	plain := &InputScript{URL: "http://cam/x"}
	for _, tc := range []struct {
		s     *InputScript
		major int
		want  bool
	}{{withOpts, 4, false}, {withOpts, 5, true}, {withOpts, 0, true}, {plain, 4, true}} {
		if got := tc.s.Supported(Tool{Major: tc.major}); got != tc.want {
			t.Errorf("opts %v on ffmpeg %d: supported %v, want %v", tc.s.Opts, tc.major, got, tc.want)
		}
	}
}
