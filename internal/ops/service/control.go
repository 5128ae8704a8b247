package service

import (
	"context"
	"fmt"
)

// Uninstall stops the service and removes its definition. Directories
// (config, state with queues, logs) and the service account are kept.
func (in *Installer) Uninstall(ctx context.Context, c Config) error {
	c, err := c.normalizeTarget()
	if err != nil {
		return err
	}
	if err := in.checkHost(c, "uninstall"); err != nil {
		return err
	}
	switch c.Manager {
	case Systemd:
		return in.uninstallSystemd(ctx, c)
	case Launchd:
		return in.uninstallLaunchd(ctx, c)
	case TaskScheduler:
		if st, _ := in.statusTask(ctx, c); !st.Installed {
			return usageErr("check --name and --user", "not installed: no task %s", c.Name)
		}
		_, _ = in.Host.Run(ctx, "schtasks", "/End", "/TN", c.Name) // not running is fine
		return in.run(ctx, nil, nil, "schtasks", "/Delete", "/TN", c.Name, "/F")
	case Windows:
		return in.uninstallSCM(ctx, c)
	}
	return fmt.Errorf("uninstall: manager %q not handled", c.Manager)
}

// Start starts the installed service.
func (in *Installer) Start(ctx context.Context, c Config) error { return in.control(ctx, c, "start") }

// Stop asks the service to stop gracefully (SIGTERM, or the SCM stop
// control); the manager kills it after the stop timeout.
func (in *Installer) Stop(ctx context.Context, c Config) error { return in.control(ctx, c, "stop") }

func (in *Installer) control(ctx context.Context, c Config, verb string) error {
	c, err := c.normalizeTarget()
	if err != nil {
		return err
	}
	if err := in.checkHost(c, verb); err != nil {
		return err
	}
	st, err := in.Status(ctx, c)
	if err != nil {
		return err
	}
	if !st.Installed {
		return usageErr("install it first with `schnitzel service install`", "%s service %s is not installed", c.Manager, c.Name)
	}
	switch c.Manager {
	case Systemd:
		args := systemctl(c, verb, c.Name+".service")
		return in.run(ctx, nil, nil, args[0], args[1:]...)
	case Launchd:
		target := launchdDomain(c) + "/" + LaunchdLabel(c.Name)
		if verb == "start" {
			return in.run(ctx, nil, nil, "launchctl", "kickstart", target)
		}
		// KeepAlive restarts only unsuccessful exits, and a graceful stop
		// exits 0, so the job stays stopped until started again.
		return in.run(ctx, nil, nil, "launchctl", "kill", "SIGTERM", target)
	case TaskScheduler:
		if verb == "start" {
			return in.run(ctx, nil, nil, "schtasks", "/Run", "/TN", c.Name)
		}
		// Task Scheduler can only terminate the process (no graceful stop);
		// the windows manager stops services gracefully.
		return in.run(ctx, nil, nil, "schtasks", "/End", "/TN", c.Name)
	case Windows:
		return in.controlSCM(ctx, c, verb)
	}
	return fmt.Errorf("%s: manager %q not handled", verb, c.Manager)
}

// Status reports whether the service is installed and running.
func (in *Installer) Status(ctx context.Context, c Config) (State, error) {
	c, err := c.normalizeTarget()
	if err != nil {
		return State{}, err
	}
	if goos := c.Manager.GOOS(); goos != in.goos() {
		return State{}, usageErr("run it on "+goos, "cannot query a %s service on %s", c.Manager, in.goos())
	}
	switch c.Manager {
	case Systemd:
		return in.statusSystemd(ctx, c)
	case Launchd:
		return in.statusLaunchd(ctx, c)
	case TaskScheduler:
		return in.statusTask(ctx, c)
	case Windows:
		return in.statusSCM(ctx, c)
	}
	return State{}, fmt.Errorf("status: manager %q not handled", c.Manager)
}
