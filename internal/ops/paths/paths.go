// Package paths names the three path classes of a deployment (config, state,
// logs) for each operating system, system-wide and per user. The layout is the
// one the upstream ops spec standardised (P9.2); upstream only documented it,
// we compute it.
//
// For is pure (GOOS and environment are arguments) so every OS's layout is
// tested on any host; Default (in the per-OS files) feeds it the host's values.
package paths

import (
	"errors"
	"fmt"
	"strings"
)

// Scope says whose deployment the paths belong to.
type Scope string

const (
	// System is the machine-wide deployment run by a service manager as root
	// or a dedicated account.
	System Scope = "system"
	// User is a per-user deployment (--user): systemd --user, a LaunchAgent,
	// a logon task.
	User Scope = "user"
)

// EnvFileName is the environment file kept in the config directory; its name
// is the one the upstream systemd example used.
const EnvFileName = "schnitzel-stream.env"

// Paths is one deployment's directories.
type Paths struct {
	OS     string `json:"os"`
	Scope  Scope  `json:"scope"`
	Config string `json:"config"`
	State  string `json:"state"`
	Logs   string `json:"logs"`
	// EnvFile is the default environment file (inside Config).
	EnvFile string `json:"env_file"`
}

// Getenv looks up one environment variable ("" when unset).
type Getenv func(string) string

// ErrNoHome is returned for a user scope when the environment names no home.
var ErrNoHome = errors.New("no home directory in the environment")

// For computes the paths for goos. user selects the per-user layout. env is
// consulted for HOME, XDG_CONFIG_HOME, XDG_STATE_HOME (Linux and other Unix),
// ProgramData, LOCALAPPDATA and USERPROFILE (Windows); a nil env reads nothing.
func For(goos string, user bool, env Getenv) (Paths, error) {
	if env == nil {
		env = func(string) string { return "" }
	}
	p := Paths{OS: goos, Scope: System}
	if user {
		p.Scope = User
	}
	switch goos {
	case "windows":
		// Windows paths are joined with '\' whatever the host is.
		var base string
		if user {
			base = env("LOCALAPPDATA")
			if base == "" {
				if prof := env("USERPROFILE"); prof != "" {
					base = winJoin(prof, "AppData", "Local")
				}
			}
			if base == "" {
				return Paths{}, fmt.Errorf("windows user paths: %w (set LOCALAPPDATA or USERPROFILE)", ErrNoHome)
			}
		} else {
			base = env("ProgramData")
			if base == "" {
				base = `C:\ProgramData`
			}
		}
		root := winJoin(base, "SchnitzelStream")
		p.Config = winJoin(root, "config")
		p.State = winJoin(root, "state")
		p.Logs = winJoin(root, "logs")
		p.EnvFile = winJoin(p.Config, EnvFileName)
		return p, nil
	case "darwin":
		if user {
			home := env("HOME")
			if home == "" {
				return Paths{}, fmt.Errorf("darwin user paths: %w (set HOME)", ErrNoHome)
			}
			support := unixJoin(home, "Library", "Application Support", "schnitzel-stream")
			p.Config = unixJoin(support, "config")
			p.State = unixJoin(support, "state")
			p.Logs = unixJoin(home, "Library", "Logs", "schnitzel-stream")
		} else {
			p.Config = "/usr/local/etc/schnitzel-stream"
			p.State = "/usr/local/var/lib/schnitzel-stream"
			p.Logs = "/usr/local/var/log/schnitzel-stream"
		}
		p.EnvFile = unixJoin(p.Config, EnvFileName)
		return p, nil
	default:
		// Linux and every other Unix: FHS system-wide, XDG base directories
		// per user. XDG has no log directory; logs are state.
		if user {
			home := env("HOME")
			cfg := absOrEmpty(env("XDG_CONFIG_HOME"))
			state := absOrEmpty(env("XDG_STATE_HOME"))
			if (cfg == "" || state == "") && home == "" {
				return Paths{}, fmt.Errorf("%s user paths: %w (set HOME)", goos, ErrNoHome)
			}
			if cfg == "" {
				cfg = unixJoin(home, ".config")
			}
			if state == "" {
				state = unixJoin(home, ".local", "state")
			}
			p.Config = unixJoin(cfg, "schnitzel-stream")
			p.State = unixJoin(state, "schnitzel-stream")
			p.Logs = unixJoin(p.State, "logs")
		} else {
			p.Config = "/etc/schnitzel-stream"
			p.State = "/var/lib/schnitzel-stream"
			p.Logs = "/var/log/schnitzel-stream"
		}
		p.EnvFile = unixJoin(p.Config, EnvFileName)
		return p, nil
	}
}

// absOrEmpty drops relative XDG values: the XDG spec says such values are
// invalid and must be ignored.
func absOrEmpty(s string) string {
	if strings.HasPrefix(s, "/") {
		return s
	}
	return ""
}

func unixJoin(elem ...string) string {
	out := strings.TrimRight(elem[0], "/")
	for _, e := range elem[1:] {
		out += "/" + strings.Trim(e, "/")
	}
	return out
}

func winJoin(elem ...string) string {
	out := strings.TrimRight(elem[0], `\/`)
	for _, e := range elem[1:] {
		out += `\` + strings.Trim(e, `\/`)
	}
	return out
}

// Join joins path elements with goos's separator, independent of the host.
func Join(goos string, elem ...string) string {
	if goos == "windows" {
		return winJoin(elem...)
	}
	return unixJoin(elem...)
}

// IsAbs reports whether p is absolute on goos, independent of the host.
func IsAbs(goos, p string) bool {
	if goos == "windows" {
		if strings.HasPrefix(p, `\\`) {
			return true // UNC
		}
		return len(p) >= 3 && isLetter(p[0]) && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
	}
	return strings.HasPrefix(p, "/")
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// Dirs returns the three directories in a fixed order, labelled.
func (p Paths) Dirs() []Dir {
	return []Dir{{"config", p.Config}, {"state", p.State}, {"logs", p.Logs}}
}

// Dir is one labelled directory.
type Dir struct {
	Class string
	Path  string
}
