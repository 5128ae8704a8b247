package service

import (
	"context"
	"os"
	"strconv"
	"strings"
)

// launchdDomain is the launchctl domain target of c.
func launchdDomain(c Config) string {
	if c.User {
		return "gui/" + strconv.Itoa(os.Getuid())
	}
	return "system"
}

func (in *Installer) installLaunchd(ctx context.Context, c Config, def Definition, rb *rollback) error {
	if _, err := in.Host.LookPath("launchctl"); err != nil {
		return usageErr("install on macOS, or print the plist with `schnitzel service render --manager launchd`",
			"launchctl not found")
	}
	owner := ""
	if c.RunAs != "" && !c.User {
		if _, _, err := in.Host.LookupUser(c.RunAs); err != nil {
			return usageErr("create the account first (sysadminctl -addUser "+c.RunAs+" ...) or drop --run-as",
				"account %s does not exist", c.RunAs)
		}
		owner = c.RunAs
	}
	if err := in.mkdirs(c, rb, owner); err != nil {
		return err
	}
	if err := in.writeFile(def.Path, []byte(def.Content), 0o644, rb); err != nil {
		return err
	}
	domain := launchdDomain(c)
	// bootstrap loads the job; RunAtLoad starts it at once.
	return in.run(ctx, rb, []string{"launchctl", "bootout", domain + "/" + LaunchdLabel(c.Name)},
		"launchctl", "bootstrap", domain, def.Path)
}

func (in *Installer) uninstallLaunchd(ctx context.Context, c Config) error {
	p := launchdPlistPath(c)
	if _, err := os.Stat(in.fsPath(p)); err != nil {
		return usageErr("check --name and --user", "not installed: %s does not exist", p)
	}
	target := launchdDomain(c) + "/" + LaunchdLabel(c.Name)
	// bootout sends SIGTERM, waits ExitTimeOut, then SIGKILL. A job that is
	// not loaded is not an error here: the plist is removed either way.
	if _, err := in.Host.Run(ctx, "launchctl", "bootout", target); err != nil {
		in.logf("launchctl bootout %s: %v (continuing)", target, err)
	}
	if err := os.Remove(in.fsPath(p)); err != nil {
		return err
	}
	in.logf("removed %s", p)
	return nil
}

func (in *Installer) statusLaunchd(ctx context.Context, c Config) (State, error) {
	p := launchdPlistPath(c)
	st := State{Manager: Launchd, Name: c.Name, Path: p}
	if _, err := os.Stat(in.fsPath(p)); err != nil {
		st.Detail = "not installed"
		return st, nil
	}
	st.Installed = true
	out, err := in.Host.Run(ctx, "launchctl", "print", launchdDomain(c)+"/"+LaunchdLabel(c.Name))
	if err != nil {
		st.Detail = "not loaded"
		return st, nil
	}
	st.Detail = "unknown"
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " = "); ok && k == "state" {
			st.Detail = v
			break
		}
	}
	st.Running = st.Detail == "running"
	return st, nil
}
