//go:build windows

package queue

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockRegion is the locked byte: far past the file's content (Windows
// locks are mandatory: locking byte 0 would hide the pid from readers).
func lockRegion() *windows.Overlapped { return &windows.Overlapped{OffsetHigh: 1} }

func lockFile(f *os.File, flags uint32) error {
	ol := lockRegion()
	err := windows.LockFileEx(windows.Handle(f.Fd()), flags|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return errLockHeld
	}
	return err
}

func tryLock(f *os.File) error       { return lockFile(f, windows.LOCKFILE_EXCLUSIVE_LOCK) }
func tryLockShared(f *os.File) error { return lockFile(f, 0) }
func unlock(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, lockRegion())
}
