package pathscmd

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
)

func run(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand(func(k string) string { return env[k] })
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestPathsJSON(t *testing.T) {
	out, err := run(t, map[string]string{"HOME": "/home/u"}, "--json", "--user", "--os", "linux")
	if err != nil {
		t.Fatal(err)
	}
	var p paths.Paths
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	if p.State != "/home/u/.local/state/schnitzel-stream" || p.Scope != paths.User {
		t.Errorf("%+v", p)
	}
}

func TestPathsText(t *testing.T) {
	out, err := run(t, nil, "--os", "windows")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"os        windows (system)", `state     C:\ProgramData\SchnitzelStream\state`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPathsUserWithoutHome(t *testing.T) {
	if _, err := run(t, nil, "--user", "--os", runtime.GOOS); err == nil {
		t.Error("want error without HOME")
	}
}

// --user works for every OS: another system's layout is shown with its
// variables as that system writes them.
func TestPathsOtherOS(t *testing.T) {
	for _, tc := range []struct {
		os, want string
	}{
		{"windows", `%LOCALAPPDATA%\SchnitzelStream\state`},
		{"macos", "$HOME/Library/Application Support/schnitzel-stream"},
		{"darwin", "$HOME/Library/Application Support/schnitzel-stream"},
		{"linux", "$HOME/"},
	} {
		if tc.os == runtime.GOOS {
			continue
		}
		out, err := run(t, nil, "--user", "--os", tc.os)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("--os %s --user: %v\n%s", tc.os, err, out)
		}
	}
	for _, bad := range []string{"freebsd", "plan9", ""} {
		if _, err := run(t, nil, "--os", bad); err == nil || !strings.Contains(err.Error(), "unknown system") {
			t.Errorf("--os %q: %v", bad, err)
		}
	}
}
