package nodes_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/cli"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/nodes/dev"
	"github.com/schnitzel-stream/schnitzel/packs/vision/event"
	"github.com/schnitzel-stream/schnitzel/packs/vision/nodes"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/plugin/plugintest"
)

// extraNodes, when set, registers a test's own plugins too.
var extraNodes func(*plugin.Registry)

func registry() *plugin.Registry {
	r := plugin.NewRegistry()
	dev.Register(r)
	nodes.Register(r)
	if extraNodes != nil {
		extraNodes(r)
	}
	return r
}

type builtNode struct {
	id   string
	node any
}

// runChain loads a linear seed graph and drives its nodes by hand, in
// order, returning what the print sink wrote and every node.
func runChain(t *testing.T, file string) (string, []builtNode) {
	t.Helper()
	g, diags := graph.LoadFile(file, func(string) (string, bool) { return "", false })
	if errs := diags.Errors(); len(errs) > 0 || g == nil {
		t.Fatalf("load %s: %v", file, errs)
	}
	for i, e := range g.Edges {
		if e.From != g.Nodes[i].ID || e.To != g.Nodes[i+1].ID {
			t.Fatalf("%s: not a linear chain in file order (edge %d %s->%s)", file, i, e.From, e.To)
		}
	}
	reg := registry()
	var stdout bytes.Buffer
	var built []builtNode
	for _, n := range g.Nodes {
		e, ok := reg.Lookup(n.Plugin)
		if !ok {
			t.Fatalf("plugin %s not registered", n.Plugin)
		}
		dec, _, errs := e.Decode(n.Config)
		if len(errs) > 0 {
			t.Fatalf("node %s config: %v", n.ID, errs[0])
		}
		node, err := e.Build(dec, plugin.Env{NodeID: n.ID, Kind: n.Kind, Plugin: n.Plugin, Stdout: &stdout})
		if err != nil {
			t.Fatalf("node %s: %v", n.ID, err)
		}
		plugintest.Start(t, node)
		t.Cleanup(func() { plugintest.Close(t, node) })
		built = append(built, builtNode{n.ID, node})
	}
	pkts := plugintest.RunSource(t, built[0].node, 0)
	for _, b := range built[1:] {
		c := &plugintest.Collector{}
		if err := plugintest.ProcessInto(b.node, c, pkts...); err != nil {
			t.Fatalf("node %s: %v", b.id, err)
		}
		pkts = c.Packets()
	}
	return stdout.String(), built
}

var (
	reIDs   = regexp.MustCompile(`"(packet_id|source_packet_id)": "[0-9a-f-]{36}"`)
	reNow   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00`)
	reEvent = regexp.MustCompile(`"event_id": "[0-9a-f-]{36}"`)
)

// normalise blanks what differs per run: packet ids always; with
// wallClock also timestamps and the event ids derived from them, after
// checking that each event id is the UUIDv5 of its idempotency key.
func normalise(t *testing.T, lines []string, wallClock bool) []string {
	t.Helper()
	out := make([]string, len(lines))
	for i, l := range lines {
		if wallClock {
			_, js, _ := strings.Cut(l, " ")
			var v struct {
				Payload struct {
					EventID string `json:"event_id"`
				} `json:"payload"`
				Meta struct {
					Key string `json:"idempotency_key"`
				} `json:"meta"`
			}
			if err := json.Unmarshal([]byte(js), &v); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if v.Meta.Key != "" && event.ID(v.Meta.Key) != v.Payload.EventID {
				t.Errorf("line %d: event_id %s is not UUIDv5(%q)", i, v.Payload.EventID, v.Meta.Key)
			}
			l = reNow.ReplaceAllString(l, "<now>")
			l = reEvent.ReplaceAllString(l, `"event_id": "<event_id>"`)
		}
		out[i] = reIDs.ReplaceAllString(l, `"$1": "<id>"`)
	}
	return out
}

// upstream splits a captured upstream run into node lines and the report's
// extension metrics (node.<id>.<name> beyond the runtime's four).
func upstream(t *testing.T, name string) ([]string, map[string]int64) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name+".upstream.out"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	ext := map[string]int64{}
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if !strings.HasPrefix(l, "{") {
			lines = append(lines, l)
			continue
		}
		var rep struct {
			Metrics map[string]int64 `json:"metrics"`
		}
		if err := json.Unmarshal([]byte(l), &rep); err != nil {
			t.Fatal(err)
		}
		for k, v := range rep.Metrics {
			parts := strings.Split(k, ".")
			if parts[0] != "node" || len(parts) != 3 {
				continue
			}
			switch parts[2] {
			case "consumed", "produced", "is_source", "is_sink":
				continue
			}
			ext[k] = v
		}
	}
	return lines, ext
}

func TestSeedGraphsMatchUpstream(t *testing.T) {
	cases := []struct {
		graph     string
		wallClock bool // StaticSource packets without ts
		lines     int
	}{
		{"dev_cctv_e2e_mock_v2", false, 3},
		{"dev_cctv_detection_to_event_v2", true, 1},
		{"dev_cctv_policy_demo_v2", true, 2},
	}
	for _, c := range cases {
		t.Run(c.graph, func(t *testing.T) {
			got, built := runChain(t, filepath.Join("..", "testdata", c.graph+".yaml"))
			gotLines := strings.Split(strings.TrimRight(got, "\n"), "\n")
			wantLines, wantExt := upstream(t, c.graph)
			if len(gotLines) != c.lines || len(wantLines) != c.lines {
				t.Fatalf("lines: got %d, upstream %d, want %d\n%s", len(gotLines), len(wantLines), c.lines, got)
			}
			g, w := normalise(t, gotLines, c.wallClock), normalise(t, wantLines, c.wallClock)
			for i := range g {
				if g[i] != w[i] {
					t.Errorf("line %d\n got %s\nwant %s", i, g[i], w[i])
				}
			}
			gotExt := map[string]int64{}
			for _, b := range built {
				if m, ok := b.node.(plugin.Metrics); ok {
					for _, x := range m.Metrics() {
						gotExt["node."+b.id+"."+x.Name] = x.Value
					}
				}
			}
			if len(gotExt) != len(wantExt) {
				t.Errorf("extension metrics: got %v, upstream %v", gotExt, wantExt)
			}
			for k, v := range wantExt {
				if gotExt[k] != v {
					t.Errorf("metric %s = %d, upstream %d", k, gotExt[k], v)
				}
			}
		})
	}
}

// TestDefaultGraphGoldenEvents is upstream's tests/regression/test_v2_golden.py:
// the default graph's events compared on 7 keys with v2_golden_events.jsonl,
// plus the event ids the spec lists.
func TestDefaultGraphGoldenEvents(t *testing.T) {
	out, _ := runChain(t, filepath.Join("..", "testdata", "dev_cctv_e2e_mock_v2.yaml"))
	data, err := os.ReadFile(filepath.Join("..", "testdata", "v2_golden_events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	golden := strings.Split(strings.TrimSpace(string(data)), "\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(golden) {
		t.Fatalf("%d events, golden has %d", len(lines), len(golden))
	}
	ids := []string{"479498e4-8f22-50d8-8fbf-3a619dd16c04", "c544b5ff-b5e3-50c1-ac97-560dfd8b1156", "00a97391-9caf-5a68-b65d-ee5c04a4615d"}
	for i, l := range lines {
		js := strings.TrimPrefix(l, "E2E ")
		var pk struct {
			Payload map[string]any `json:"payload"`
		}
		if err := json.Unmarshal([]byte(js), &pk); err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(golden[i]), &want); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"event_type", "object_type", "severity", "track_id", "bbox", "confidence", "zone"} {
			g, _ := json.Marshal(pk.Payload[k])
			w, _ := json.Marshal(want[k])
			if !bytes.Equal(g, w) {
				t.Errorf("event %d %s = %s, golden %s", i, k, g, w)
			}
		}
		if pk.Payload["event_id"] != ids[i] {
			t.Errorf("event %d id %v, want %s", i, pk.Payload["event_id"], ids[i])
		}
	}
}

// TestSeedGraphsThroughRuntime runs the same graphs through the real CLI
// and runtime (not by hand) and compares the printed lines with upstream.
func TestSeedGraphsThroughRuntime(t *testing.T) {
	for _, g := range []string{"dev_cctv_e2e_mock_v2", "dev_cctv_detection_to_event_v2", "dev_cctv_policy_demo_v2"} {
		t.Run(g, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			app := &cli.App{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" },
				LookupEnv: func(string) (string, bool) { return "", false }, Registry: registry()}
			if code := app.Run([]string{"--graph", filepath.Join("..", "testdata", g+".yaml"), "--report-json"}); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var got []string
			var report string
			for _, l := range strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n") {
				if strings.HasPrefix(l, "{") {
					report = l
					continue
				}
				got = append(got, l)
			}
			want, wantExt := upstream(t, g)
			wall := g != "dev_cctv_e2e_mock_v2"
			gn, wn := normalise(t, got, wall), normalise(t, want, wall)
			if strings.Join(gn, "\n") != strings.Join(wn, "\n") {
				t.Fatalf("output\n got %s\nwant %s", strings.Join(gn, "\n"), strings.Join(wn, "\n"))
			}
			var rep struct {
				Status  string           `json:"status"`
				Metrics map[string]int64 `json:"metrics"`
			}
			if err := json.Unmarshal([]byte(report), &rep); err != nil {
				t.Fatalf("report %q: %v", report, err)
			}
			for k, v := range wantExt {
				if rep.Metrics[k] != v {
					t.Errorf("report %s = %d, upstream %d", k, rep.Metrics[k], v)
				}
			}
			if rep.Status != "ok" {
				t.Errorf("status %s", rep.Status)
			}
		})
	}
}
