package doctorcmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	igraph "github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/ops/doctor"
)

func run(t *testing.T, o Options, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand(o)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// userEnv points the per-user layout at a temp home.
func userEnv(t *testing.T, create bool) (func(string) string, string) {
	home := t.TempDir()
	env := map[string]string{"HOME": home}
	if create {
		for _, d := range []string{".config/schnitzel-stream", ".local/state/schnitzel-stream/logs"} {
			os.MkdirAll(filepath.Join(home, d), 0o750)
		}
	}
	return func(k string) string { return env[k] }, home
}

// emptyPlan stands in for the run's loader (doctor's own tests use the
// real one): a valid graph without nodes.
func emptyPlan(string) (*igraph.Plan, error) {
	return &igraph.Plan{Graph: &igraph.Graph{Version: 2}}, nil
}

func plenty(string) (uint64, uint64, error) { return 100 << 30, 200 << 30, nil }

func TestDoctorJSONOK(t *testing.T) {
	getenv, home := userEnv(t, true)
	graph := filepath.Join(home, "g.yaml")
	os.WriteFile(graph, []byte("version: 2\nnodes: []\n"), 0o644)
	out, err := run(t, Options{Getenv: getenv, GOOS: "linux", DiskFree: plenty, Load: emptyPlan},
		"--user", "--json", "--graph", graph, "--service=false")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != doctor.OK || len(r.Checks) < 5 {
		t.Errorf("%+v", r)
	}
}

func TestDoctorFailsExit1(t *testing.T) {
	getenv, home := userEnv(t, false)
	// A file where the state directory belongs fails, service or not.
	os.MkdirAll(filepath.Join(home, ".local/state"), 0o750)
	os.WriteFile(filepath.Join(home, ".local/state/schnitzel-stream"), nil, 0o600)
	out, err := run(t, Options{Getenv: getenv, GOOS: "linux", DiskFree: plenty}, "--user", "--service=false")
	var ee *exitcode.Error
	if !errors.As(err, &ee) || ee.Code != exitcode.Runtime {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "fail  dir.state") || !strings.Contains(out, "doctor: fail") {
		t.Errorf("output:\n%s", out)
	}
}

// On a development machine (no service) missing service directories are
// warnings that say when they matter, and the fix keeps --user.
func TestDoctorMissingDirsWithoutService(t *testing.T) {
	getenv, _ := userEnv(t, false)
	out, err := run(t, Options{Getenv: getenv, GOOS: "linux", DiskFree: plenty}, "--user", "--service=false")
	if err != nil {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "matters only for a service") || !strings.Contains(out, "fix: create it: `schnitzel service install --user`") {
		t.Errorf("output:\n%s", out)
	}
}

// An invalid graph is exit 2, as for validate, run and service install.
func TestDoctorInvalidGraphExit2(t *testing.T) {
	getenv, home := userEnv(t, true)
	graph := filepath.Join(home, "g.yaml")
	os.WriteFile(graph, []byte("version: 2\nnodes: []\n"), 0o644)
	out, err := run(t, Options{Getenv: getenv, GOOS: "linux", DiskFree: plenty,
		Load: func(string) (*igraph.Plan, error) {
			return nil, errors.New(graph + ":3: nesting deeper than the limit of 64 levels")
		}},
		"--user", "--graph", graph, "--service=false")
	var ee *exitcode.Error
	if !errors.As(err, &ee) || ee.Code != exitcode.Usage {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out, graph+":3: nesting deeper") {
		t.Errorf("output lacks the line:\n%s", out)
	}
}

func TestDoctorUnknownManager(t *testing.T) {
	_, err := run(t, Options{GOOS: "linux"}, "--manager", "upstart")
	var ee *exitcode.Error
	if !errors.As(err, &ee) || ee.Code != exitcode.Usage {
		t.Fatalf("err = %v", err)
	}
}
