package service

import (
	"strings"
	"testing"
)

// The unit's TimeoutStopSec stays above the run's worst-case stop
// (--stop-timeout + stuck grace + close bound), so systemd's SIGKILL never
// lands before the report is written.
func TestSystemdTimeoutStopSecCoversStopTimeout(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "TimeoutStopSec=30"},
		{[]string{"--stop-timeout", "5s"}, "TimeoutStopSec=30"},
		{[]string{"--stop-timeout", "60s"}, "TimeoutStopSec=82"},
		{[]string{"--stop-timeout", "60"}, "TimeoutStopSec=82"},
		{[]string{"--log-level", "debug", "--stop-timeout=2m"}, "TimeoutStopSec=142"},
	} {
		cfg := Config{Manager: Systemd, Binary: "/usr/local/bin/schnitzel", Graph: "/etc/g.yaml",
			Args: c.args, Paths: mustPaths(t, "linux", false, nil)}
		def, err := Render(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(def.Content, "\n"+c.want+"\n") {
			t.Errorf("args %v: want %s in\n%s", c.args, c.want, def.Content)
		}
	}
}
