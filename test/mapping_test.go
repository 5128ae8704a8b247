package test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// TestMappingExampleGraph runs configs/graphs/mapping_v2.yaml with the
// built binary: Split, Mapping (with a runtime error passed on), Filter and
// Switch, each reading's route checked.
func TestMappingExampleGraph(t *testing.T) {
	r := run(t, "", nil, "--graph", "configs/graphs/mapping_v2.yaml", "--report-json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	ls := lines(r.stdout)
	var routes []string
	for _, l := range ls[:len(ls)-1] {
		port, body, _ := strings.Cut(l, " ")
		var p struct {
			Kind    string
			Payload struct {
				Sensor     string
				Fahrenheit float64
				TempC      *float64 `json:"temp_c"`
				Celsius    *float64
			}
			Meta map[string]any
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if p.Kind != "reading" || p.Payload.TempC == nil || p.Payload.Celsius != nil || p.Meta["hour"] != "08" {
			t.Errorf("not mapped: %s", l)
		}
		routes = append(routes, port+p.Payload.Sensor)
	}
	sort.Strings(routes)
	if got := strings.Join(routes, ","); got != "FREEZINGt3,HOTt2,NORMALt1" {
		t.Errorf("routes %s\n%s", got, r.stdout)
	}
	var rep struct {
		Status  string
		Metrics map[string]int64
	}
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	for k, want := range map[string]int64{
		"node.enrich.eval_errors_total": 1, "node.valid.kept_total": 3, "node.valid.dropped_total": 1,
		"node.route.matched_total": 2, "node.route.unmatched_total": 1, "node.split.emitted_total": 4,
	} {
		if rep.Metrics[k] != want {
			t.Errorf("%s = %d, want %d (report %s)", k, rep.Metrics[k], want, ls[len(ls)-1])
		}
	}
	if !strings.Contains(r.stderr, "expression failed; packet passed on unchanged") || !strings.Contains(r.stderr, "invalid operation: <nil> * int") {
		t.Errorf("the passed error was not logged:\n%s", r.stderr)
	}
}
