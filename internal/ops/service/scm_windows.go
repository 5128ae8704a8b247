//go:build windows

package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

func connectSCM() (*mgr.Mgr, error) {
	m, err := mgr.Connect()
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return nil, usageErr("run it from an elevated prompt (Run as administrator)", "access to the service manager denied")
	}
	if err != nil {
		return nil, fmt.Errorf("connect to the service manager: %w", err)
	}
	return m, nil
}

func (in *Installer) installSCM(ctx context.Context, c Config, def Definition, rb *rollback) error {
	m, err := connectSCM()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	if s, err := m.OpenService(c.Name); err == nil {
		s.Close()
		return usageErr("run `schnitzel service uninstall --manager windows` first", "already installed: service %s exists", c.Name)
	}
	if err := in.mkdirs(c, rb, ""); err != nil {
		return err
	}
	if err := in.grantLocalService(ctx, c, rb); err != nil {
		return err
	}
	args := c.ProgramArgs()
	s, err := m.CreateService(c.Name, args[0], mgr.Config{
		ServiceType:      windows.SERVICE_WIN32_OWN_PROCESS,
		StartType:        mgr.StartAutomatic,
		DelayedAutoStart: true,
		ErrorControl:     mgr.ErrorNormal,
		DisplayName:      "Schnitzel Stream (" + c.Name + ")",
		Description:      c.description(),
		ServiceStartName: WindowsServiceAccount,
	}, args[1:]...)
	if err != nil {
		return fmt.Errorf("create service %s: %w", c.Name, err)
	}
	defer s.Close()
	in.logf("created service %s", c.Name)
	rb.add("delete service "+c.Name, func() error {
		m, err := mgr.Connect()
		if err != nil {
			return err
		}
		defer m.Disconnect()
		s, err := m.OpenService(c.Name)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Delete()
	})
	actions := make([]mgr.RecoveryAction, len(WindowsRecoveryDelays))
	for i, d := range WindowsRecoveryDelays {
		actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d}
	}
	if err := s.SetRecoveryActions(actions, uint32(RecoveryResetPeriod.Seconds())); err != nil {
		return fmt.Errorf("service %s: set recovery actions: %w", c.Name, err)
	}
	// A non-zero exit (run error) counts as a failure, not only crashes.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("service %s: set failure flag: %w", c.Name, err)
	}
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SYSTEM\CurrentControlSet\Services\`+c.Name, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("service %s: open registry key: %w", c.Name, err)
	}
	defer k.Close()
	if err := k.SetStringsValue("Environment", windowsEnvironment(c)); err != nil {
		return fmt.Errorf("service %s: set environment: %w", c.Name, err)
	}
	return nil
}

func openSCMService(name string) (*mgr.Mgr, *mgr.Service, error) {
	m, err := connectSCM()
	if err != nil {
		return nil, nil, err
	}
	s, err := m.OpenService(name)
	if err != nil {
		m.Disconnect()
		return nil, nil, usageErr("check --name", "not installed: service %s: %v", name, err)
	}
	return m, s, nil
}

// stopSCM sends the stop control and waits for the stopped state.
func stopSCM(ctx context.Context, s *mgr.Service) error {
	st, err := s.Query()
	if err != nil {
		return err
	}
	if st.State == svc.Stopped {
		return nil
	}
	if _, err := s.Control(svc.Stop); err != nil {
		return fmt.Errorf("stop %s: %w", s.Name, err)
	}
	deadline := time.Now().Add(StopTimeout + 10*time.Second)
	for time.Now().Before(deadline) {
		st, err := s.Query()
		if err != nil {
			return err
		}
		if st.State == svc.Stopped {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("service %s did not stop within %v", s.Name, StopTimeout+10*time.Second)
}

func (in *Installer) uninstallSCM(ctx context.Context, c Config) error {
	m, s, err := openSCMService(c.Name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if err := stopSCM(ctx, s); err != nil {
		return err
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("delete service %s: %w", c.Name, err)
	}
	in.logf("deleted service %s", c.Name)
	return nil
}

func (in *Installer) controlSCM(ctx context.Context, c Config, verb string) error {
	m, s, err := openSCMService(c.Name)
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if verb == "start" {
		if err := s.Start(); err != nil {
			return fmt.Errorf("start service %s: %w", c.Name, err)
		}
		return nil
	}
	return stopSCM(ctx, s)
}

var scmStates = map[svc.State]string{
	svc.Stopped: "stopped", svc.StartPending: "start_pending", svc.StopPending: "stop_pending",
	svc.Running: "running", svc.ContinuePending: "continue_pending", svc.PausePending: "pause_pending",
	svc.Paused: "paused",
}

func (in *Installer) statusSCM(ctx context.Context, c Config) (State, error) {
	st := State{Manager: Windows, Name: c.Name}
	m, err := connectSCM()
	if err != nil {
		return st, err
	}
	defer m.Disconnect()
	s, err := m.OpenService(c.Name)
	if err != nil {
		st.Detail = "not installed"
		return st, nil
	}
	defer s.Close()
	st.Installed = true
	q, err := s.Query()
	if err != nil {
		return st, fmt.Errorf("query service %s: %w", c.Name, err)
	}
	st.Detail = scmStates[q.State]
	st.Running = q.State == svc.Running
	return st, nil
}
