package report

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/runtime"
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

func TestAbandonedStopIsReported(t *testing.T) {
	r := &runtime.Result{
		Snapshot: runtime.Snapshot{Nodes: []runtime.NodeStats{
			{ID: "src", IsSource: true, Produced: 10},
			{ID: "out", IsSink: true, Consumed: 4, Abandoned: 6},
		}, SourceEmitted: 10},
		Stopped: true, StopExpired: true, Abandoned: 6, Stuck: []string{"out"}, Degraded: true,
	}
	rep := FromResult("g.yaml", r)
	var got map[string]any
	if err := json.Unmarshal(rep.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	m := got["metrics"].(map[string]any)
	for k, want := range map[string]any{
		"stopped_by_signal": true, "stop_timeout_expired": true, "abandoned_total": float64(6), "status": StatusDegraded,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if s, _ := got["stuck_nodes"].([]any); len(s) != 1 || s[0] != "out" {
		t.Errorf("stuck_nodes = %v", got["stuck_nodes"])
	}
	if m["node.out.abandoned_total"] != float64(6) || m["packets.abandoned_total"] != float64(6) || m["node.src.abandoned_total"] != float64(0) {
		t.Errorf("metrics %v", m)
	}
	if s := rep.Summary(2, 1); !strings.Contains(s, "abandoned=6") || !strings.Contains(s, "stuck=out") {
		t.Errorf("summary %q does not mention what was abandoned", s)
	}
}

func TestCleanRunSummaryUnchanged(t *testing.T) {
	rep := FromResult("g.yaml", &runtime.Result{Snapshot: runtime.Snapshot{Nodes: []runtime.NodeStats{{ID: "a", Produced: 3}}}})
	if s := rep.Summary(1, 0); s != "v2 graph executed (in-proc): nodes=1 edges=0 packets=3" {
		t.Errorf("summary %q", s)
	}
	var got map[string]any
	if err := json.Unmarshal(rep.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	if got["abandoned_total"] != float64(0) || got["stop_timeout_expired"] != nil || got["stuck_nodes"] != nil {
		t.Errorf("clean run report %v", got)
	}
}
