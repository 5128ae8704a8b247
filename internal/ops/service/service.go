// Package service renders and installs the OS service definition that runs
// `schnitzel --graph G` under the platform's service manager: a systemd unit
// (Linux), a launchd plist (macOS), a Windows SCM service, or a Windows Task
// Scheduler task (the upstream seed's Windows lane). Render is pure; Install
// and the life-cycle verbs act on the host through a Host, so tests replace
// the system with a recorder.
package service

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
)

// Manager names a service manager.
type Manager string

// Supported managers.
const (
	Systemd       Manager = "systemd"
	Launchd       Manager = "launchd"
	Windows       Manager = "windows"
	TaskScheduler Manager = "taskscheduler"
)

// Managers lists every manager, in help order.
var Managers = []Manager{Systemd, Launchd, Windows, TaskScheduler}

// ErrUsage marks errors caused by the operator's input or environment
// (unknown manager, missing file, no permission); the CLI exits 2 on them.
var ErrUsage = errors.New("usage")

// usageErr builds an error that wraps ErrUsage and says how to fix it.
func usageErr(fix string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if fix != "" {
		msg += "\n  fix: " + fix
	}
	return &UsageError{Msg: msg}
}

// UsageError is an operator error; errors.Is(err, ErrUsage) holds.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string        { return e.Msg }
func (e *UsageError) Is(target error) bool { return target == ErrUsage }

// ParseManager parses a --manager value.
func ParseManager(s string) (Manager, error) {
	for _, m := range Managers {
		if string(m) == strings.ToLower(strings.TrimSpace(s)) {
			return m, nil
		}
	}
	names := make([]string, len(Managers))
	for i, m := range Managers {
		names[i] = string(m)
	}
	return "", usageErr("use --manager "+strings.Join(names, "|"), "unknown service manager %q", s)
}

// DefaultManager is the preferred manager for goos (upstream seed 003 names
// Task Scheduler for Windows; we prefer the SCM, which restarts a service and
// stops it gracefully, and keep Task Scheduler as an option).
func DefaultManager(goos string) Manager {
	switch goos {
	case "darwin":
		return Launchd
	case "windows":
		return Windows
	default:
		return Systemd
	}
}

// GOOS is the operating system the manager belongs to.
func (m Manager) GOOS() string {
	switch m {
	case Launchd:
		return "darwin"
	case Windows, TaskScheduler:
		return "windows"
	default:
		return "linux"
	}
}

// Restart and stop policy shared by every manager. Upstream's only concrete
// bound was RestartSec=3; we add a start-rate limit so a graph that fails at
// once does not restart forever every 3 seconds.
const (
	RestartDelay     = 3 * time.Second
	StartLimitWindow = 5 * time.Minute
	StartLimitBurst  = 5
	StopTimeout      = 30 * time.Second
	WatchdogTimeout  = 60 * time.Second
	// DefaultName is the service name when --name is not given.
	DefaultName = "schnitzel"
	// DefaultRunAs is the dedicated account of system-wide systemd services.
	DefaultRunAs = "schnitzel"
	// LaunchdLabelPrefix prefixes the service name to form the launchd label.
	LaunchdLabelPrefix = "org.schnitzel-stream."
	// Environment variables set by launchd and Windows definitions and read by
	// RunAsService: the env file to load and the directory to change to
	// (systemd has native EnvironmentFile= and WorkingDirectory=).
	EnvFileVar = "SCHNITZEL_ENV_FILE"
	WorkdirVar = "SCHNITZEL_WORKDIR"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Config describes one service.
type Config struct {
	Manager Manager
	// Name of the service (unit name without .service, launchd label suffix,
	// Windows service or task name). Default DefaultName.
	Name string
	// Binary is the absolute path of the schnitzel executable.
	Binary string
	// Graph is the absolute path of the graph file (not with Serve).
	Graph string
	// Serve runs `schnitzel serve` (every graph of ServeGraphsDir, the
	// control API on loopback) instead of one graph.
	Serve bool
	// User selects a per-user service (systemd --user, LaunchAgent, logon task).
	User bool
	// EnvFile is an explicit environment file; "" uses Paths.EnvFile if it
	// exists at run time (optional).
	EnvFile string
	// RunAs is the account of a system-wide service. systemd: default
	// DefaultRunAs; launchd: default "" (root); Windows SCM and Task
	// Scheduler: default LocalService. For a user task it is the user.
	RunAs string
	// Args are extra arguments appended after --graph G (e.g. --log-file).
	Args []string
	// Paths of the deployment (config, state, logs) for Manager.GOOS().
	Paths paths.Paths
	// Home is the user's home directory (user-scope launchd and systemd).
	Home string
}

// Definition is a rendered service definition.
type Definition struct {
	Manager Manager `json:"manager"`
	Name    string  `json:"name"`
	// Path is where Install writes Content ("" when the definition is
	// registered through an API rather than a file).
	Path    string `json:"path"`
	Content string `json:"content"`
}

// normalize fills defaults and checks the fields every renderer relies on.
func (c Config) normalize() (Config, error) {
	if err := CheckValues(c); err != nil {
		return c, err
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !nameRE.MatchString(c.Name) {
		return c, usageErr("use letters, digits, '.', '_' or '-' (at most 64)", "invalid service name %q", c.Name)
	}
	goos := c.Manager.GOOS()
	if _, err := ParseManager(string(c.Manager)); err != nil {
		return c, err
	}
	if c.Binary == "" || !paths.IsAbs(goos, c.Binary) {
		return c, usageErr("pass --binary with an absolute path", "binary path %q is not absolute for %s", c.Binary, goos)
	}
	switch {
	case c.Serve && c.Graph != "":
		return c, usageErr("drop --graph: the serve service runs every graph of "+c.ServeGraphsDir(), "--serve and --graph exclude each other")
	case !c.Serve && (c.Graph == "" || !paths.IsAbs(goos, c.Graph)):
		return c, usageErr("pass --graph with an absolute path", "graph path %q is not absolute for %s", c.Graph, goos)
	}
	if c.EnvFile != "" && !paths.IsAbs(goos, c.EnvFile) {
		return c, usageErr("pass --env-file with an absolute path", "env file path %q is not absolute for %s", c.EnvFile, goos)
	}
	if c.Paths.State == "" || c.Paths.Logs == "" || c.Paths.Config == "" {
		return c, errors.New("service config: paths not set")
	}
	if c.Paths.OS != "" && c.Paths.OS != goos {
		return c, fmt.Errorf("service config: paths are for %s, manager %s runs on %s", c.Paths.OS, c.Manager, goos)
	}
	if err := c.checkAccount(); err != nil {
		return c, err
	}
	if c.Manager == Systemd && !c.User && c.RunAs == "" {
		c.RunAs = DefaultRunAs
	}
	if c.Manager == Windows && c.User {
		return c, usageErr("install a per-user task with --manager taskscheduler --user, or drop --user",
			"the Windows service manager has no per-user services")
	}
	if (c.Manager == Windows || c.Manager == TaskScheduler) && !hasArg(c.Args, "--log-file") {
		// Windows services and tasks have no console: without a log file
		// their output is lost (systemd has the journal, launchd
		// StandardErrorPath).
		c.Args = append(append([]string(nil), c.Args...), "--log-file", paths.Join("windows", c.Paths.Logs, c.Name+".log"))
	}
	if c.Manager == Windows && c.RunAs != "" && c.RunAs != WindowsServiceAccount {
		return c, usageErr("install with the default account (LocalService), then change it with sc.exe config "+c.Name+" obj= ACCOUNT password= ...",
			"--run-as is not supported for the Windows service manager (an account other than LocalService needs a password)")
	}
	if c.Manager == TaskScheduler && !c.User && c.RunAs != "" {
		return c, usageErr("drop --run-as (the task runs as LocalService), or use --user for a task of your own account",
			"--run-as is not supported for system-wide Task Scheduler tasks (another account needs a stored password)")
	}
	if (c.Manager == Launchd || c.Manager == Systemd) && c.User && c.Home == "" {
		return c, usageErr("set HOME", "a per-user %s service needs the home directory", c.Manager)
	}
	return c, nil
}

func hasArg(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// normalizeTarget checks what the life-cycle verbs (uninstall, start, stop,
// status) need: manager, name, paths and home.
func (c Config) normalizeTarget() (Config, error) {
	if _, err := ParseManager(string(c.Manager)); err != nil {
		return c, err
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !nameRE.MatchString(c.Name) {
		return c, usageErr("use letters, digits, '.', '_' or '-' (at most 64)", "invalid service name %q", c.Name)
	}
	if (c.Manager == Launchd || c.Manager == Systemd) && c.User && c.Home == "" {
		return c, usageErr("set HOME", "a per-user %s service needs the home directory", c.Manager)
	}
	return c, nil
}

// ProgramArgs is the command line the service runs: binary, --graph G, extra
// args; with Serve: binary serve --graphs DIR --state DIR, extra args.
func (c Config) ProgramArgs() []string {
	if c.Serve {
		return append([]string{c.Binary, "serve", "--graphs", c.ServeGraphsDir(), "--state", c.ServeStateDir()}, c.Args...)
	}
	return append([]string{c.Binary, "--graph", c.Graph}, c.Args...)
}

// ServeGraphsDir is the graphs directory of a serve service:
// <config>/graphs.d, serve's own default.
func (c Config) ServeGraphsDir() string {
	return paths.Join(c.Manager.GOOS(), c.Paths.Config, "graphs.d")
}

// ServeStateDir is the state directory of a serve service: <state>/serve
// (state.json, the lock, the token, the audit log).
func (c Config) ServeStateDir() string { return paths.Join(c.Manager.GOOS(), c.Paths.State, "serve") }

// description is the one line a manager shows for the service.
func (c Config) description() string {
	if c.Serve {
		return "Runs schnitzel serve (the graphs of " + c.ServeGraphsDir() + ")"
	}
	return "Runs the schnitzel graph " + c.Graph
}

// writableDirs are the directories the service account must be able to
// write: state and logs, and for serve the graphs directory (the API
// writes graph files there).
func (c Config) writableDirs() []string {
	ds := []string{c.Paths.State, c.Paths.Logs}
	if c.Serve {
		ds = append(ds, c.ServeGraphsDir())
	}
	return ds
}

// envFile is the env file the definition refers to and whether it is optional.
func (c Config) envFile() (string, bool) {
	if c.EnvFile != "" {
		return c.EnvFile, false
	}
	return c.Paths.EnvFile, true
}

// Render produces the exact definition Install would write, touching nothing.
func Render(c Config) (Definition, error) {
	c, err := c.normalize()
	if err != nil {
		return Definition{}, err
	}
	switch c.Manager {
	case Systemd:
		return renderSystemd(c), nil
	case Launchd:
		return renderLaunchd(c), nil
	case TaskScheduler:
		return renderTask(c), nil
	case Windows:
		return renderWindows(c), nil
	}
	return Definition{}, fmt.Errorf("render: manager %q not handled", c.Manager)
}
