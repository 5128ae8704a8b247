package service

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
)

// TestRealInstallRollsBackWithoutSystemd drives the real host: useradd,
// directories, the unit file, then `systemctl daemon-reload`, which fails
// on a machine where systemd is not PID 1 (containers, CI), and checks that
// the rollback leaves nothing behind. It changes the system, so it runs only
// when SCHNITZEL_TEST_REAL_SYSTEM=1, as root, with the account and paths unused.
func TestRealInstallRollsBackWithoutSystemd(t *testing.T) {
	if os.Getenv("SCHNITZEL_TEST_REAL_SYSTEM") != "1" {
		t.Skip("set SCHNITZEL_TEST_REAL_SYSTEM=1 (as root, without systemd as PID 1) to run")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if comm, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(comm)) == "systemd" {
		t.Skip("systemd is PID 1 here: the install would succeed for real")
	}
	const name, account = "schnitzel-rollback-test", "schnitzel-rbtest"
	if _, err := user.Lookup(account); err == nil {
		t.Skipf("account %s exists", account)
	}
	base := t.TempDir()
	p := paths.Paths{OS: "linux", Scope: paths.System, Config: filepath.Join(base, "etc"),
		State: filepath.Join(base, "var", "lib"), Logs: filepath.Join(base, "var", "log")}
	p.EnvFile = filepath.Join(p.Config, paths.EnvFileName)
	graph := filepath.Join(base, "graph.yaml")
	if err := os.WriteFile(graph, []byte("version: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	in := &Installer{Host: LocalHost{}, Out: &log}
	cfg := Config{Manager: Systemd, Name: name, Binary: "/usr/bin/true", Graph: graph, RunAs: account, Paths: p}
	_, err := in.Install(context.Background(), cfg)
	if err == nil {
		in.Uninstall(context.Background(), cfg)
		t.Fatal("install succeeded without systemd; expected daemon-reload to fail")
	}
	if errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err = %v\nlog:\n%s", err, log.String())
	}
	if _, err := user.Lookup(account); err == nil {
		t.Errorf("account %s left behind", account)
	}
	if _, err := os.Stat("/etc/systemd/system/" + name + ".service"); err == nil {
		t.Errorf("unit left behind")
	}
	for _, d := range []string{p.State, p.Logs, filepath.Join(base, "var")} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left behind", d)
		}
	}
	t.Logf("install error: %v\nsteps:\n%s", err, log.String())
}
