//go:build !windows

package service

import "context"

// The Windows service manager is reachable only on Windows; checkHost
// refuses it earlier, these keep the dispatch total.

func errSCM() error {
	return usageErr("run it on Windows, or print the commands with `schnitzel service render --manager windows`",
		"the Windows service manager is only available on Windows")
}

func (in *Installer) installSCM(context.Context, Config, Definition, *rollback) error {
	return errSCM()
}
func (in *Installer) uninstallSCM(context.Context, Config) error       { return errSCM() }
func (in *Installer) controlSCM(context.Context, Config, string) error { return errSCM() }
func (in *Installer) statusSCM(context.Context, Config) (State, error) { return State{}, errSCM() }
