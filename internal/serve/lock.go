package serve

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrLocked: another Supervisor (another schnitzel serve) holds StateDir.
var ErrLocked = errors.New("state directory is in use")

// lockFile holds StateDir/serve.lock for the life of a Supervisor. The
// lock is the OS's (flock, LockFileEx), so it goes away with the process:
// a crash never leaves a stale lock behind. The file holds the holder's
// pid, for the message the next one prints.
type lockFile struct {
	f    *os.File
	path string
}

func acquireLock(path string) (*lockFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	held, err := lockExclusive(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if held {
		pid := readPID(path)
		f.Close()
		if pid != "" {
			return nil, fmt.Errorf("%w: %s is held by pid %s (another schnitzel serve on this state directory)", ErrLocked, path, pid)
		}
		return nil, fmt.Errorf("%w: %s is held by another process (another schnitzel serve on this state directory)", ErrLocked, path)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		_ = f.Sync()
	}
	return &lockFile{f: f, path: path}, nil
}

func readPID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(s); err != nil {
		return ""
	}
	return s
}

func (l *lockFile) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
