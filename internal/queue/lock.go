package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A lease owner proves it is alive by holding an OS file lock for as long
// as its process lives: <queue>.consumers/<owner>.lock, flock on unix,
// LockFileEx on Windows. The OS drops the lock when the process dies
// (kill -9 included), so a reader that finds an owner's lock free knows
// the owner is gone and can take its rows back at once, instead of
// waiting out the lease.

// consumersDir is the directory of the lock files of a queue file.
func consumersDir(queueKey string) string { return queueKey + ".consumers" }

// lockName turns an owner name into a file name: names that are not
// plain file names get a hash suffix, so two names never share a file.
func lockName(owner string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '@':
			return r
		}
		return '_'
	}, owner)
	if len(clean) > 80 {
		clean = clean[:80]
	}
	if clean != owner || strings.HasPrefix(clean, ".") {
		sum := sha256.Sum256([]byte(owner))
		clean += "-" + hex.EncodeToString(sum[:4])
	}
	return clean + ".lock"
}

func lockPath(queueKey, owner string) string {
	return filepath.Join(consumersDir(queueKey), lockName(owner))
}

// ownerLock is a held lock file.
type ownerLock struct {
	f    *os.File
	path string
}

// errLockHeld: the lock is held by another open file (another process, or
// another handle in this one).
var errLockHeld = errors.New("lock held")

// acquireLock takes owner's lock, retrying briefly: a liveness probe of
// another reader holds the lock for a moment.
func acquireLock(queueKey, owner string) (*ownerLock, error) {
	if err := os.MkdirAll(consumersDir(queueKey), 0o755); err != nil {
		return nil, fmt.Errorf("create consumer lock directory: %w", err)
	}
	p := lockPath(queueKey, owner)
	var last error
	for i := 0; i < 10; i++ {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open consumer lock: %w", err)
		}
		err = tryLock(f)
		if err == nil {
			// Say who holds it, for the message a second process gets.
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d\nsince %s\nowner %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339), owner)), 0)
			return &ownerLock{f: f, path: p}, nil
		}
		f.Close()
		last = err
		if !errors.Is(err, errLockHeld) {
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, last
}

// lockHolderPID reads the pid a lock file names (0 if unknown).
func lockHolderPID(queueKey, owner string) int {
	b, err := os.ReadFile(lockPath(queueKey, owner))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimPrefix(line, "pid "))
	return pid
}

// release drops the lock; remove also deletes the file (only for names
// nobody else will use: a deleted lock file may be locked by a prober at
// that moment, which is harmless for a name never used again).
func (l *ownerLock) release(remove bool) {
	if l == nil || l.f == nil {
		return
	}
	if remove {
		_ = os.Remove(l.path)
	}
	_ = unlock(l.f)
	_ = l.f.Close()
	l.f = nil
}

// ownerAlive reports whether owner's lock is held by a live process. It
// never creates anything: no lock file means the owner is not alive (an
// owner written by an older build, or one whose lock directory was
// removed). A lock this process holds counts as alive.
func ownerAlive(queueKey, owner string) bool {
	f, err := os.OpenFile(lockPath(queueKey, owner), os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := tryLockShared(f); err != nil {
		return errors.Is(err, errLockHeld)
	}
	_ = unlock(f)
	return false
}

// OwnerAlive reports whether the lease owner of the queue file at path
// is a live process (see ownerAlive).
func OwnerAlive(path, owner string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	return ownerAlive(abs, owner)
}
