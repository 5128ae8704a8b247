package service

import (
	"context"
	"os"
	"strings"
)

func systemctl(c Config, args ...string) []string {
	if c.User {
		return append([]string{"systemctl", "--user"}, args...)
	}
	return append([]string{"systemctl"}, args...)
}

// hiddenByProtectHome lists the prefixes ProtectHome=yes makes invisible.
var hiddenByProtectHome = []string{"/home/", "/root/", "/run/user/"}

// hiddenByPrivateTmp lists the prefixes PrivateTmp=yes replaces with the
// service's own empty directories: a binary or graph there is not found.
var hiddenByPrivateTmp = []string{"/tmp/", "/var/tmp/"}

func (in *Installer) installSystemd(ctx context.Context, c Config, def Definition, rb *rollback) error {
	if _, err := in.Host.LookPath("systemctl"); err != nil {
		return usageErr("install on a systemd host, or print the unit with `schnitzel service render --manager systemd`",
			"systemctl not found: this host does not run systemd")
	}
	if !c.User {
		env, _ := c.envFile()
		files := []struct{ what, path, fix string }{
			{"binary", c.Binary, "install it as /usr/local/bin/schnitzel and pass --binary /usr/local/bin/schnitzel"},
			{"graph", c.Graph, "copy it to " + c.Paths.Config + "/ and pass that path to --graph"},
			{"env file", env, "move it to " + c.Paths.EnvFile},
		}
		if c.Serve {
			files = append(files[:1], files[2])
		}
		for _, f := range files {
			for _, pre := range hiddenByProtectHome {
				if strings.HasPrefix(f.path, pre) {
					return usageErr(f.fix, "%s %s is under %s, which the unit's ProtectHome=yes hides from the service",
						f.what, f.path, strings.TrimSuffix(pre, "/"))
				}
			}
			for _, pre := range hiddenByPrivateTmp {
				if strings.HasPrefix(f.path, pre) {
					return usageErr(f.fix, "%s %s is under %s, which the unit's PrivateTmp=yes replaces with an empty directory for the service",
						f.what, f.path, strings.TrimSuffix(pre, "/"))
				}
			}
		}
		if c.RunAs != "" {
			if err := in.ensureUser(ctx, c, rb); err != nil {
				return err
			}
		}
	}
	owner := ""
	if !c.User {
		owner = c.RunAs
	}
	if err := in.mkdirs(c, rb, owner); err != nil {
		return err
	}
	restore, err := in.writeFileUndo(def.Path, []byte(def.Content), 0o644)
	if err != nil {
		return err
	}
	// One undo step: put the old unit back (or remove ours), then reload if
	// systemd had loaded ours, so its in-memory state follows the file.
	reload := systemctl(c, "daemon-reload")
	reloaded := false
	rb.add("restore "+def.Path, func() error {
		if err := restore(); err != nil {
			return err
		}
		if !reloaded {
			return nil
		}
		_, err := in.Host.Run(context.Background(), reload[0], reload[1:]...)
		return err
	})
	if err := in.run(ctx, nil, nil, reload[0], reload[1:]...); err != nil {
		return err
	}
	reloaded = true
	unit := c.Name + ".service"
	enable := systemctl(c, "enable", unit)
	return in.run(ctx, rb, systemctl(c, "disable", unit), enable[0], enable[1:]...)
}

// ensureUser creates the dedicated system account when it is missing.
func (in *Installer) ensureUser(ctx context.Context, c Config, rb *rollback) error {
	if _, _, err := in.Host.LookupUser(c.RunAs); err == nil {
		return nil
	}
	if _, err := in.Host.LookPath("useradd"); err != nil {
		return usageErr("create the account yourself (useradd --system "+c.RunAs+") or pass --run-as with an existing account",
			"account %s does not exist and useradd is not available", c.RunAs)
	}
	return in.run(ctx, rb, []string{"userdel", c.RunAs}, "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", c.Paths.State, "--shell", "/usr/sbin/nologin", "--comment", "schnitzel stream service", c.RunAs)
}

func (in *Installer) uninstallSystemd(ctx context.Context, c Config) error {
	p := systemdUnitPath(c)
	if _, err := os.Stat(in.fsPath(p)); err != nil {
		return usageErr("check --name and --user", "not installed: %s does not exist", p)
	}
	unit := c.Name + ".service"
	disable := systemctl(c, "disable", "--now", unit)
	if err := in.run(ctx, nil, nil, disable[0], disable[1:]...); err != nil {
		return err
	}
	if err := os.Remove(in.fsPath(p)); err != nil {
		return err
	}
	in.logf("removed %s", p)
	reload := systemctl(c, "daemon-reload")
	if err := in.run(ctx, nil, nil, reload[0], reload[1:]...); err != nil {
		return err
	}
	// Forget a failed state; harmless when there is none.
	reset := systemctl(c, "reset-failed", unit)
	_, _ = in.Host.Run(ctx, reset[0], reset[1:]...)
	return nil
}

func (in *Installer) statusSystemd(ctx context.Context, c Config) (State, error) {
	p := systemdUnitPath(c)
	st := State{Manager: Systemd, Name: c.Name, Path: p}
	if _, err := os.Stat(in.fsPath(p)); err != nil {
		st.Detail = "not installed"
		return st, nil
	}
	st.Installed = true
	// is-active exits non-zero for every state but active; its output is
	// the state either way.
	args := systemctl(c, "is-active", c.Name+".service")
	out, _ := in.Host.Run(ctx, args[0], args[1:]...)
	st.Detail = firstLine(out)
	if st.Detail == "" {
		st.Detail = "unknown"
	}
	st.Running = st.Detail == "active" || st.Detail == "reloading"
	return st, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(s)
}
