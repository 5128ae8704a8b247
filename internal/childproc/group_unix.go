//go:build unix

package childproc

import (
	"os/exec"
	"syscall"
)

// SetGroup puts the child in its own process group, so that a shell
// wrapper and whatever it started die together.
func SetGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// KillGroup kills the child's whole process group: no grandchild is left
// behind as an orphan.
func KillGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}
