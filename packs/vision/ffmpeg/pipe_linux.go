package ffmpeg

import (
	"os"
	"syscall"
)

// childMaxRSS returns a reaped child's peak resident set in bytes.
func childMaxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024 // KiB on Linux
	}
	return 0
}

// growPipe raises the pipe's capacity from 64 KiB to 1 MiB (the default
// unprivileged limit), so a 720p frame takes a few reads instead of forty
// context switches. Best effort: on failure the pipe keeps its size.
func growPipe(f *os.File) {
	const fSetPipeSz = 1031 // F_SETPIPE_SZ
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, 1<<20)
	})
}
