//go:build unix

package execnodes

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the plugin in its own process group, so that a
// shell wrapper and whatever it started die together.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills the plugin's whole process group: no grandchild is left
// behind as an orphan.
func killGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}
