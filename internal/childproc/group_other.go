//go:build !unix

package childproc

import "os/exec"

// SetGroup does nothing here: there are no process groups to set.
func SetGroup(*exec.Cmd) {}

// KillGroup kills the child.
func KillGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
}
