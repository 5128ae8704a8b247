//go:build unix

package detect

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the adapter in its own process group, so that a
// shell wrapper and the model process it started die together.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}
