package test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestWindowExampleGraph runs configs/graphs/window_v2.yaml with the built
// binary: Merge joins two sources by order id, Window sums per site over
// event-time windows, Batch bundles the results.
func TestWindowExampleGraph(t *testing.T) {
	r := run(t, "", nil, "--graph", "configs/graphs/window_v2.yaml", "--report-json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	ls := lines(r.stdout)
	var sites []string
	for _, l := range ls[:len(ls)-1] {
		var p struct {
			Kind    string
			Payload struct {
				Count int
				Items []struct {
					Key     string
					Count   int
					Revenue float64
					Unpaid  int
				}
			}
		}
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if p.Kind != "site_report" || p.Payload.Count != len(p.Payload.Items) {
			t.Errorf("not a batch: %s", l)
		}
		for _, it := range p.Payload.Items {
			sites = append(sites, it.Key+":"+strconv.FormatFloat(it.Revenue, 'g', -1, 64))
		}
	}
	if got := strings.Join(sites, ","); got != "a:15.5,b:0,a:1" {
		t.Errorf("windows %s, want a:15.5,b:0,a:1\n%s", got, r.stdout)
	}
	var rep struct{ Metrics map[string]int64 }
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	for k, want := range map[string]int64{"node.join.joined_total": 4, "node.per_site.windows_total": 3, "node.batch.batches_total": 2, "node.per_site.late_total": 0} {
		if rep.Metrics[k] != want {
			t.Errorf("%s = %d, want %d", k, rep.Metrics[k], want)
		}
	}
}
