package service

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// Host is the system the installer acts on. LocalHost is the real one;
// tests record commands and inject failures.
type Host interface {
	// Run runs a command and returns its combined output.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
	LookPath(file string) (string, error)
	// IsAdmin reports root (Unix) or an elevated token (Windows).
	IsAdmin() bool
	// LookupUser returns an account's numeric ids (Unix).
	LookupUser(name string) (uid, gid int, err error)
}

// LocalHost is the machine this process runs on.
type LocalHost struct{}

// Run implements Host.
func (LocalHost) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), err
}

// LookPath implements Host.
func (LocalHost) LookPath(file string) (string, error) { return exec.LookPath(file) }

// IsAdmin implements Host.
func (LocalHost) IsAdmin() bool { return isAdmin() }

// LookupUser implements Host.
func (LocalHost) LookupUser(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: uid %q is not numeric", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s: gid %q is not numeric", name, u.Gid)
	}
	return uid, gid, nil
}
