package cli

import (
	"os"
	"syscall"
)

// growStdoutPipe raises stdout's capacity to 1 MiB (the unprivileged
// default limit) when it is a pipe: print sinks write a batch of lines at a
// time, and a 64 KiB pipe makes every batch several context switches with
// the reader. Best effort; a file or terminal is left alone.
func growStdoutPipe() {
	st, err := os.Stdout.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	const fSetPipeSz = 1031 // F_SETPIPE_SZ
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, os.Stdout.Fd(), fSetPipeSz, 1<<20)
}
