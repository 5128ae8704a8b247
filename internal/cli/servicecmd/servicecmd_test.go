package servicecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/ops/service"
)

type recHost struct {
	admin bool
	calls []string
}

func (h *recHost) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	h.calls = append(h.calls, strings.Join(append([]string{name}, args...), " "))
	return nil, nil
}
func (h *recHost) LookPath(f string) (string, error) { return "/usr/bin/" + f, nil }
func (h *recHost) IsAdmin() bool                     { return h.admin }
func (h *recHost) LookupUser(string) (int, int, error) {
	return os.Getuid(), os.Getgid(), nil
}

type env struct {
	dir, graph, bin string
	host            *recHost
	root            string
}

func setup(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, graph: filepath.Join(dir, "g.yaml"), bin: filepath.Join(dir, "schnitzel"), host: &recHost{admin: true}}
	os.WriteFile(e.graph, []byte("version: 2\n"), 0o644)
	os.WriteFile(e.bin, []byte("#!/bin/sh\n"), 0o755)
	return e
}

func (e *env) run(t *testing.T, validate Validator, args ...string) (string, string, error) {
	t.Helper()
	in := &service.Installer{Host: e.host, GOOS: "linux", Root: e.root}
	cmd := NewCommand(Options{Validate: validate, GOOS: "linux", Installer: in,
		Getenv:     func(k string) string { return map[string]string{"HOME": "/home/op"}[k] },
		Executable: func() (string, error) { return e.bin, nil }})
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errb.String(), err
}

func code(err error) int {
	var ee *exitcode.Error
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestRenderSystemdHost(t *testing.T) {
	e := setup(t)
	var validated string
	out, _, err := e.run(t, func(p string) error { validated = p; return nil },
		"render", "--graph", e.graph, "--", "--log-file", "/var/log/schnitzel-stream/s.log")
	if err != nil {
		t.Fatal(err)
	}
	if validated != e.graph {
		t.Errorf("validator got %q", validated)
	}
	want := "ExecStart=" + e.bin + " --graph " + e.graph + " --log-file /var/log/schnitzel-stream/s.log\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "User=schnitzel") {
		t.Errorf("unit lacks %q:\n%s", want, out)
	}
	if len(e.host.calls) != 0 {
		t.Errorf("render touched the system: %v", e.host.calls)
	}
}

func TestRenderOtherOSJSON(t *testing.T) {
	e := setup(t)
	out, _, err := e.run(t, nil, "render", "--manager", "taskscheduler", "--graph", `D:\g.yaml`, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var def service.Definition
	if err := json.Unmarshal([]byte(out), &def); err != nil {
		t.Fatal(err)
	}
	if def.Manager != service.TaskScheduler || !strings.Contains(def.Content, `<Command>C:\Program Files\Schnitzel\schnitzel.exe</Command>`) {
		t.Errorf("%+v", def)
	}
}

func TestBadInputExit2(t *testing.T) {
	e := setup(t)
	invalid := func(string) error { return errors.New("node src: unknown plugin x") }
	tests := []struct {
		name     string
		validate Validator
		args     []string
		want     string
	}{
		{"unknown manager", nil, []string{"render", "--manager", "upstart", "--graph", "g"}, "unknown service manager"},
		{"missing graph", nil, []string{"install", "--graph", "/nonexistent/g.yaml"}, "fix: pass --graph"},
		{"invalid graph", invalid, []string{"install", "--graph", "GRAPH"}, "unknown plugin x"},
		{"no root", nil, []string{"install", "--graph", "GRAPH"}, "administrator rights"},
		{"missing binary", nil, []string{"install", "--graph", "GRAPH", "--binary", "/nope/schnitzel"}, "binary /nope/schnitzel"},
		{"windows on linux", nil, []string{"install", "--manager", "windows", "--graph", `C:\g.yaml`}, "render --manager windows"},
		{"stray args", nil, []string{"render", "--graph", "GRAPH", "extra"}, "after --"},
		{"status of other os", nil, []string{"status", "--manager", "launchd"}, "cannot query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.host.admin = tt.name != "no root"
			e.root = t.TempDir()
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "GRAPH", e.graph)
			}
			// File checks run under Root: mirror the real graph and binary.
			for _, p := range []string{e.graph, e.bin} {
				os.MkdirAll(filepath.Join(e.root, filepath.Dir(p)), 0o755)
				data, _ := os.ReadFile(p)
				os.WriteFile(filepath.Join(e.root, p), data, 0o755)
			}
			_, _, err := e.run(t, tt.validate, args...)
			if code(err) != exitcode.Usage || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (code %d), want exit 2 with %q", err, code(err), tt.want)
			}
		})
	}
}

func TestInstallAndStatusUser(t *testing.T) {
	e := setup(t)
	e.host.admin = false
	// Everything the installer touches goes under a temporary root; the
	// graph and binary are mirrored there.
	e.root = t.TempDir()
	for _, p := range []string{e.graph, e.bin} {
		os.MkdirAll(filepath.Join(e.root, filepath.Dir(p)), 0o755)
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(e.root, p), data, 0o755)
	}
	_, stderr, err := e.run(t, nil, "install", "--user", "--graph", e.graph)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "start it with: schnitzel service start --manager systemd --name schnitzel --user") {
		t.Errorf("stderr: %s", stderr)
	}
	unit := filepath.Join(e.root, "/home/op/.config/systemd/user/schnitzel.service")
	if _, err := os.Stat(unit); err != nil {
		t.Fatalf("unit not written under the test root: %v", err)
	}
	out, _, err := e.run(t, nil, "status", "--user", "--json")
	if err != nil && code(err) != StatusStopped { // installed, not started
		t.Fatal(err)
	}
	var st service.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Installed {
		t.Errorf("status after install: %+v", st)
	}
	if _, _, err := e.run(t, nil, "uninstall", "--user"); err != nil {
		t.Fatal(err)
	}
	// Nothing installed: status says so and exits non-zero.
	if out, _, err := e.run(t, nil, "status", "--user"); code(err) != StatusNotInstalled || !strings.Contains(out, "not installed") {
		t.Errorf("status after uninstall: exit %d, %q", code(err), out)
	}
	if _, err := os.Stat(unit); err == nil {
		t.Error("unit left after uninstall")
	}
}

func TestWrapPermission(t *testing.T) {
	err := wrap(&os.PathError{Op: "open", Path: "/etc/x", Err: os.ErrPermission})
	if code(err) != exitcode.Usage || !strings.Contains(err.Error(), "fix:") {
		t.Errorf("%v", err)
	}
	if code(wrap(errors.New("systemctl failed"))) != exitcode.Runtime {
		t.Error("runtime failure not exit 1")
	}
}

func TestValidateSeesEnvFile(t *testing.T) {
	e := setup(t)
	envFile := filepath.Join(e.dir, "svc.env")
	os.WriteFile(envFile, []byte("SCHNITZEL_TEST_CAMERA_URL=rtsp://cam/1\n"), 0o600)
	t.Setenv("SCHNITZEL_TEST_CAMERA_URL", "")
	var seen string
	_, _, err := e.run(t, func(string) error { seen = os.Getenv("SCHNITZEL_TEST_CAMERA_URL"); return nil },
		"render", "--graph", e.graph, "--env-file", envFile)
	if err != nil {
		t.Fatal(err)
	}
	if seen != "rtsp://cam/1" {
		t.Errorf("validator saw %q", seen)
	}
	os.WriteFile(envFile, []byte("broken line\n"), 0o600)
	if _, _, err := e.run(t, nil, "render", "--graph", e.graph, "--env-file", envFile); code(err) != exitcode.Usage {
		t.Errorf("broken env file: %v", err)
	}
}

// TestRenderMissingGraphEveryManager: rendering for another machine is
// allowed whatever the manager: a graph that does not exist here is a
// warning naming it, never a refusal; install refuses it.
func TestRenderMissingGraphEveryManager(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct{ manager, graph string }{
		{"systemd", "/srv/other-host/g.yaml"},
		{"launchd", "/Users/op/graphs/g.yaml"},
		{"windows", `C:\ProgramData\SchnitzelStream\config\g.yaml`},
		{"taskscheduler", `D:\graphs\g.yaml`},
	} {
		t.Run(tc.manager, func(t *testing.T) {
			validated := false
			out, stderr, err := e.run(t, func(string) error { validated = true; return nil },
				"render", "--manager", tc.manager, "--graph", tc.graph)
			if err != nil {
				t.Fatalf("render refused a graph that is elsewhere: %v", err)
			}
			if !strings.Contains(stderr, "WARNING: graph "+tc.graph+" does not exist on this machine") {
				t.Errorf("no warning naming the graph; stderr:\n%s", stderr)
			}
			if !strings.Contains(out, "g.yaml") || validated {
				t.Errorf("validated %v; definition:\n%s", validated, out)
			}
		})
	}
	if _, _, err := e.run(t, nil, "install", "--graph", "/srv/other-host/g.yaml"); code(err) != exitcode.Usage {
		t.Errorf("install of a missing graph: %v, want exit 2", err)
	}
}

// TestRenderValidatesExistingGraphEveryManager: a graph that is here is
// validated, whichever manager the definition is for.
func TestRenderValidatesExistingGraphEveryManager(t *testing.T) {
	e := setup(t)
	invalid := func(string) error { return errors.New("node src: unknown plugin x") }
	for _, m := range []string{"systemd", "launchd"} {
		if _, _, err := e.run(t, invalid, "render", "--manager", m, "--graph", e.graph); code(err) != exitcode.Usage || !strings.Contains(err.Error(), "unknown plugin x") {
			t.Errorf("%s: err = %v, want exit 2 naming the validation error", m, err)
		}
	}
}

// TestControlCharactersRefused: through the CLI, for render and install
// and every manager, an injected newline is exit 2 naming the flag, and
// no definition is printed.
func TestControlCharactersRefused(t *testing.T) {
	e := setup(t)
	const inject = "\nExecStartPre=/bin/sh -c id"
	for _, verb := range []string{"render", "install"} {
		for _, m := range []string{"systemd", "launchd", "windows", "taskscheduler"} {
			graph := e.graph
			if m == "windows" || m == "taskscheduler" {
				graph = `C:\g.yaml`
			}
			for _, tc := range []struct {
				name string
				args []string
				want string
			}{
				{"run-as", []string{"--run-as", "svc" + inject}, "--run-as: contains a newline (control character U+000A)"},
				{"env-file", []string{"--env-file", "/etc/x.env" + inject}, "--env-file: contains a newline (control character U+000A)"},
				{"binary", []string{"--binary", "/usr/bin/schnitzel" + inject}, "--binary: contains a newline"},
				{"graph", []string{"--graph", graph + inject}, "--graph: contains a newline"},
				{"extra args", []string{"--", "--log-level", "info" + inject}, "argument 2 after --: contains a newline (control character U+000A)"},
			} {
				t.Run(verb+"/"+m+"/"+tc.name, func(t *testing.T) {
					args := []string{verb, "--manager", m}
					if tc.name != "graph" {
						args = append(args, "--graph", graph)
					}
					out, _, err := e.run(t, nil, append(args, tc.args...)...)
					if code(err) != exitcode.Usage || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("err = %v (code %d), want exit 2 with %q", err, code(err), tc.want)
					}
					// (cobra prints the usage after an error here; no definition.)
					if strings.Contains(out, "ExecStart") || strings.Contains(out, "<plist") || strings.Contains(out, "sc.exe") ||
						strings.Contains(out, "<Task") || len(e.host.calls) != 0 {
						t.Errorf("printed %q, ran %v", out, e.host.calls)
					}
				})
			}
		}
	}
}

func TestRunAsRootWarns(t *testing.T) {
	e := setup(t)
	out, stderr, err := e.run(t, nil, "render", "--graph", e.graph, "--run-as", "root")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "WARNING: --run-as root: the systemd service runs as root") || !strings.Contains(out, "User=root") {
		t.Errorf("stderr:\n%s\nunit:\n%s", stderr, out)
	}
	if _, stderr, _ := e.run(t, nil, "render", "--graph", e.graph); strings.Contains(stderr, "WARNING") {
		t.Errorf("warning for the default account: %s", stderr)
	}
}
