package clientcmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/client"
)

func TestGraphName(t *testing.T) {
	for in, want := range map[string]string{"a/b/cam-1.yaml": "cam-1", "x.YML": "x", "noext": "noext", "../g.v2.yaml": "g.v2"} {
		if got := graphName(in); got != want {
			t.Errorf("graphName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteList(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	until := now.Add(4 * time.Second)
	var b bytes.Buffer
	err := writeList(&b, []serve.GraphStatus{
		{Name: "cam1", State: serve.StateRunning, Desired: "running", Status: "ok", InPerSec: 9.96, OutPerSec: 10, Since: now.Add(-90 * time.Second)},
		{Name: "bad", State: serve.StateBackoff, Desired: "running", Restarts: 3, BackoffUntil: &until, Since: now.Add(-3 * time.Hour),
			LastError: "node \"boom\" failed:\n panic: x", ReloadError: ""},
		{Name: "old", State: serve.StateRunning, Desired: "running", ReloadError: "graph is invalid"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"NAME  STATE         STATUS  IN/s  OUT/s  RESTARTS  SINCE  LAST-ERROR\n",
		"cam1  running       ok      10.0  10.0   0         90s    -\n",
		"bad   backoff (4s)  -       0.0   0.0    3         3h     node \"boom\" failed: panic: x\n",
		"reload refused: graph is invalid",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestLocalDiags(t *testing.T) {
	err := &client.APIError{Status: 422, Kind: "invalid_graph", Message: "graph is invalid",
		Errors: engine.Diags{{File: "/srv/graphs/g.yaml", Line: 7, Msg: "unknown plugin"}}}
	got := localDiags(err, "my/g.yaml").Error()
	if got != "invalid_graph: graph is invalid\n  my/g.yaml:7: unknown plugin" {
		t.Errorf("%q", got)
	}
	other := errors.New("x")
	if localDiags(other, "f") != other {
		t.Error("a non-API error was changed")
	}
}

func TestPrintFleet(t *testing.T) {
	var b bytes.Buffer
	raw := json.RawMessage(`{"streams":[{"id":"cam01","graph":"fleet.cam01","state":"running"},{"id":"cam02","graph":"fleet.cam02","state":"backoff","last_error":"rtsp: refused"}]}`)
	if err := printFleet(&b, raw, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"STREAM  GRAPH        ACTION  STATE    RESTARTS  LAST-ERROR", "cam01   fleet.cam01  -       running  -         -", "cam02   fleet.cam02  -       backoff  -         rtsp: refused"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := printFleet(&b, json.RawMessage(`{"results":[{"id":"a"}]}`), false); err != nil || !strings.Contains(b.String(), `"results"`) {
		t.Errorf("unknown shape not printed as JSON: %v %s", err, b.String())
	}
}
