package servicecmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderServe: --serve renders a definition that runs `schnitzel serve`
// with the deployment's graphs and state directories, for every manager,
// and never a --graph.
func TestRenderServe(t *testing.T) {
	e := setup(t)
	cases := []struct {
		manager string
		user    bool
		want    []string // substrings of the definition
	}{
		{"systemd", false, []string{
			"ExecStart=" + e.bin + " serve --graphs /etc/schnitzel-stream/graphs.d --state /var/lib/schnitzel-stream/serve --allow-env CAMERA_URL",
			"ReadWritePaths=/var/lib/schnitzel-stream /var/log/schnitzel-stream /etc/schnitzel-stream/graphs.d",
			"Type=notify",
			"Description=Schnitzel serve: graphs and control API (schnitzel)",
			"# schnitzel service install --manager systemd --serve -- --allow-env CAMERA_URL",
		}},
		{"systemd", true, []string{
			"ExecStart=" + e.bin + " serve --graphs /home/op/.config/schnitzel-stream/graphs.d --state /home/op/.local/state/schnitzel-stream/serve",
		}},
		{"launchd", false, []string{
			"<string>serve</string>",
			"<string>--graphs</string>",
			"<string>/usr/local/etc/schnitzel-stream/graphs.d</string>",
			"<string>/usr/local/var/lib/schnitzel-stream/serve</string>",
		}},
		{"windows", false, []string{
			`schnitzel.exe\" serve --graphs C:\ProgramData\SchnitzelStream\config\graphs.d --state C:\ProgramData\SchnitzelStream\state\serve --log-file`,
			`Runs schnitzel serve (the graphs of C:\ProgramData\SchnitzelStream\config\graphs.d)`,
			`icacls.exe "C:\ProgramData\SchnitzelStream\config\graphs.d" /grant`,
		}},
		{"taskscheduler", false, []string{
			`<Arguments>serve --graphs C:\ProgramData\SchnitzelStream\config\graphs.d --state C:\ProgramData\SchnitzelStream\state\serve --log-file`,
		}},
	}
	for _, c := range cases {
		t.Run(c.manager, func(t *testing.T) {
			args := []string{"render", "--manager", c.manager, "--serve"}
			if c.user {
				args = append(args, "--user")
			}
			if c.manager == "systemd" {
				args = append(args, "--", "--allow-env", "CAMERA_URL")
			}
			out, stderr, err := e.run(t, nil, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("definition lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "--graph ") || strings.Contains(out, "<string>--graph</string>") {
				t.Errorf("a serve definition names --graph:\n%s", out)
			}
		})
	}
}

func TestRenderServeFlags(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"render"}, "at least one of the flags in the group [graph serve] is required"},
		{[]string{"render", "--serve", "--graph", e.graph}, "[graph serve] were all set"},
	} {
		_, _, err := e.run(t, nil, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

// TestInstallServeUser installs a per-user serve unit under a test root: the
// graphs directory is created beside the others, and the output says where
// the graphs and the token go.
func TestInstallServeUser(t *testing.T) {
	e := setup(t)
	e.host.admin = false
	e.root = t.TempDir()
	os.MkdirAll(filepath.Join(e.root, filepath.Dir(e.bin)), 0o755)
	data, _ := os.ReadFile(e.bin)
	os.WriteFile(filepath.Join(e.root, e.bin), data, 0o755)
	_, stderr, err := e.run(t, nil, "install", "--user", "--serve")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	graphs := "/home/op/.config/schnitzel-stream/graphs.d"
	if fi, err := os.Stat(filepath.Join(e.root, graphs)); err != nil || !fi.IsDir() {
		t.Errorf("graphs directory not created: %v", err)
	}
	unit, err := os.ReadFile(filepath.Join(e.root, "/home/op/.config/systemd/user/schnitzel.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), " serve --graphs "+graphs+" --state /home/op/.local/state/schnitzel-stream/serve") {
		t.Errorf("unit:\n%s", unit)
	}
	for _, w := range []string{"graphs: " + graphs, "/home/op/.local/state/schnitzel-stream/serve/token"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("install output lacks %q:\n%s", w, stderr)
		}
	}
}
