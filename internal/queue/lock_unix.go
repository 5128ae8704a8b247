//go:build !windows

package queue

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			return errLockHeld
		}
		return err
	}
}

func tryLock(f *os.File) error       { return flock(f, unix.LOCK_EX) }
func tryLockShared(f *os.File) error { return flock(f, unix.LOCK_SH) }
func unlock(f *os.File) error        { return unix.Flock(int(f.Fd()), unix.LOCK_UN) }
