package report

import (
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// TestJSONMasksErrors: a node error quoting a URL keeps no secret in the
// report, and prints the URL the way logs do.
func TestJSONMasksErrors(t *testing.T) {
	e := ErrorInfo{Node: "cam", Plugin: "p", Phase: "run", Message: "rtsp cam: cannot open rtsp://admin:pw@cam/live?token=abc: refused"}
	r := &Report{TS: "t", Status: StatusError, Metrics: packet.NewMap(0), Error: &e, Errors: []ErrorInfo{e}}
	out := string(r.JSON())
	if strings.Contains(out, ":pw@") || strings.Contains(out, "token=abc") || strings.Contains(out, "admin") {
		t.Errorf("secret in report: %s", out)
	}
	if n := strings.Count(out, "rtsp://***:***@cam/live?token=***: refused"); n != 2 {
		t.Errorf("masked URL appears %d times, want 2 (error and errors): %s", n, out)
	}
}
