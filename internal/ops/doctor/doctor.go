// Package doctor checks that a deployment can run: the graph is valid, the
// directories exist and are writable, there is disk space, ffmpeg is present
// when the graph needs it, durable queue files are intact, the metrics port
// is free and the service is installed. Upstream's env_doctor checked only
// Python imports; these are the failures an edge box actually has.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
	"github.com/schnitzel-stream/schnitzel/internal/ops/service"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// Status of a check or of the whole report.
type Status string

// Statuses, in increasing severity.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one result.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Report is the outcome of Run.
type Report struct {
	Status Status  `json:"status"`
	Checks []Check `json:"checks"`
}

// Failed reports whether a required check failed.
func (r Report) Failed() bool { return r.Status == Fail }

// Disk space thresholds.
const (
	FailFreeBytes = 100 << 20 // below: fail (SQLite and logs cannot grow)
	WarnFreeBytes = 1 << 30   // below: warn
	WarnFreeRatio = 0.05      // below 5% of the file system: warn
)

// Options select and parameterise the checks. Zero values skip a check
// where noted.
type Options struct {
	// Graph is the graph file ("" skips graph, ffmpeg and queue checks).
	Graph string
	// Load loads and validates the graph exactly as a run does (the
	// bounded loader, ${oc.env:...} interpolation, the registry and the
	// plugin allowlist): the queue and ffmpeg checks read the plan it
	// returns, so they see the paths the run will open. An error is the
	// validation failure, with file:line. Required when Graph is set.
	Load func(graphPath string) (*graph.Plan, error)
	// Paths whose directories are checked.
	Paths paths.Paths
	// WorkDir is where relative paths in the graph resolve (the service's
	// working directory is the state directory). Default: the current directory.
	WorkDir string
	// MetricsAddr is checked for being free ("" skips).
	MetricsAddr string
	// Service reports the installed service (nil skips).
	Service func(ctx context.Context) (service.State, error)
	// LookPath finds executables (default exec.LookPath).
	LookPath func(string) (string, error)
	// DiskFree reports free and total bytes of the file system holding a
	// path (default: the OS implementation).
	DiskFree func(path string) (free, total uint64, err error)
	// QueueCheck selects the SQLite check: "full" (default: PRAGMA
	// integrity_check), "quick" (PRAGMA quick_check: linear, skips index
	// cross-checks; for frequent health checks) or "off".
	QueueCheck string
	// Getenv reads the deployment's variables (SCHNITZEL_ENV_FILE); default
	// os.Getenv. Graph interpolation is Load's.
	Getenv func(string) string
}

// Run performs every selected check.
func Run(ctx context.Context, o Options) Report {
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.DiskFree == nil {
		o.DiskFree = diskFree
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.WorkDir == "" {
		o.WorkDir, _ = os.Getwd()
	}
	var checks []Check
	if o.Graph != "" {
		checks = append(checks, graphChecks(o)...)
	}
	// Whether a service is installed decides whether missing directories
	// matter: a graph run by hand needs none of them.
	var svc *service.State
	if o.Service != nil {
		if st, err := o.Service(ctx); err == nil {
			svc = &st
		}
	}
	checks = append(checks, dirChecks(o, svc != nil && svc.Installed)...)
	if o.Paths.EnvFile != "" {
		checks = append(checks, envFileCheck(o.Paths.EnvFile))
	}
	if f := o.Getenv(service.EnvFileVar); f != "" && f != o.Paths.EnvFile {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			checks = append(checks, Check{Name: "env_file", Status: Warn,
				Message: fmt.Sprintf("%s=%s does not exist: a run loads no variables from it", service.EnvFileVar, f),
				Fix:     "create the file or correct " + service.EnvFileVar})
		} else {
			checks = append(checks, envFileCheck(f))
		}
	}
	if o.MetricsAddr != "" {
		checks = append(checks, portCheck(o.MetricsAddr))
	}
	if o.Service != nil {
		checks = append(checks, serviceCheck(ctx, o))
	}
	r := Report{Status: OK, Checks: checks}
	for _, c := range checks {
		if c.Status == Fail {
			r.Status = Fail
		} else if c.Status == Warn && r.Status == OK {
			r.Status = Warn
		}
	}
	return r
}

func graphChecks(o Options) []Check {
	fi, err := os.Stat(o.Graph)
	if err != nil {
		return []Check{{Name: "graph", Status: Fail, Message: fmt.Sprintf("graph %s: %v", o.Graph, errors.Unwrap(err)),
			Fix: "pass --graph with the path of an existing graph file"}}
	}
	if fi.IsDir() {
		return []Check{{Name: "graph", Status: Fail, Message: o.Graph + " is a directory", Fix: "pass --graph with a graph file"}}
	}
	if o.Load == nil {
		return []Check{{Name: "graph", Status: Fail, Message: "doctor was built without a graph loader", Fix: "report this bug"}}
	}
	plan, err := o.Load(o.Graph)
	if err != nil {
		return []Check{{Name: "graph", Status: Fail, Message: fmt.Sprintf("%s is not valid: %s", o.Graph, redact.Text(err.Error())), // may quote a URL from the config
			Fix: "run `schnitzel validate --graph " + o.Graph + "` and fix the reported lines; " +
				"a plugin outside the allowlist needs ALLOWED_PLUGIN_PREFIXES"}}
	}
	out := []Check{{Name: "graph", Status: OK, Message: o.Graph + " is valid"}}
	var plugins []string
	if plan.Graph.Version == 1 {
		plugins = append(plugins, plan.Graph.Job)
	}
	for _, n := range plan.Nodes {
		plugins = append(plugins, n.Plugin)
	}
	out = append(out, ffmpegCheck(o, plugins))
	if o.QueueCheck != "off" {
		out = append(out, queueChecks(o, plan)...)
	}
	return out
}

// needsFFmpeg reports the first plugin that decodes video through ffmpeg.
func needsFFmpeg(plugins []string) string {
	for _, p := range plugins {
		l := strings.ToLower(p)
		for _, w := range []string{"video", "rtsp", "webcam", "ffmpeg", "camera"} {
			if strings.Contains(l, w) {
				return p
			}
		}
	}
	return ""
}

func ffmpegCheck(o Options, plugins []string) Check {
	who := needsFFmpeg(plugins)
	if who == "" {
		return Check{Name: "ffmpeg", Status: OK, Message: "not needed by this graph"}
	}
	var missing []string
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := o.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return Check{Name: "ffmpeg", Status: Fail,
			Message: fmt.Sprintf("%s not found on PATH, needed by plugin %s", strings.Join(missing, " and "), who),
			Fix:     "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg) and make sure the service's PATH contains it"}
	}
	return Check{Name: "ffmpeg", Status: OK, Message: "ffmpeg and ffprobe found (needed by " + who + ")"}
}

// userFlag is " --user" for a per-user deployment, so that fix hints
// can be pasted as they are.
func userFlag(o Options) string {
	if o.Paths.Scope == paths.User {
		return " --user"
	}
	return ""
}

func dirChecks(o Options, installed bool) []Check {
	var out []Check
	for _, d := range o.Paths.Dirs() {
		name := "dir." + d.Class
		fix := "create it: `schnitzel service install" + userFlag(o) + "` does, or mkdir -p " + d.Path + " and give it to the service account"
		fi, err := os.Stat(d.Path)
		switch {
		case err != nil && !installed:
			// Only a service uses these directories: on a development
			// machine that runs graphs by hand their absence is fine.
			out = append(out, Check{Name: name, Status: Warn, Message: d.Path + " does not exist (it matters only for a service: no service is installed; a graph run by hand uses the working directory)", Fix: fix})
			continue
		case err != nil:
			out = append(out, Check{Name: name, Status: Fail, Message: d.Path + " does not exist, and the installed service needs it", Fix: fix})
			continue
		case !fi.IsDir():
			out = append(out, Check{Name: name, Status: Fail, Message: d.Path + " is not a directory", Fix: "move the file away; " + fix})
			continue
		}
		if d.Class == "config" {
			out = append(out, Check{Name: name, Status: OK, Message: d.Path + " exists"})
			continue
		}
		if err := probeWrite(d.Path); err != nil {
			out = append(out, Check{Name: name, Status: Fail, Message: fmt.Sprintf("%s is not writable: %v", d.Path, err),
				Fix: "run doctor as the service account, or give it the directory (chown -R schnitzel: " + d.Path + ")"})
			continue
		}
		out = append(out, Check{Name: name, Status: OK, Message: d.Path + " is writable"})
		out = append(out, diskCheck(o, "disk."+d.Class, d.Path))
	}
	return out
}

// probeWrite creates and removes a file: permission bits say nothing about
// read-only mounts, ACLs or root's capabilities.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".schnitzel-doctor-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func diskCheck(o Options, name, dir string) Check {
	free, total, err := o.DiskFree(dir)
	if err != nil {
		return Check{Name: name, Status: Warn, Message: fmt.Sprintf("cannot read free space of %s: %v", dir, err)}
	}
	msg := fmt.Sprintf("%s free of %s on %s", human(free), human(total), dir)
	switch {
	case free < FailFreeBytes:
		return Check{Name: name, Status: Fail, Message: msg, Fix: "free disk space: remove old logs and outputs, or move the state directory to a larger disk"}
	case free < WarnFreeBytes || (total > 0 && float64(free)/float64(total) < WarnFreeRatio):
		return Check{Name: name, Status: Warn, Message: msg, Fix: "free disk space before queues and logs fill it"}
	}
	return Check{Name: name, Status: OK, Message: msg}
}

func human(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// envFileCheck parses the environment file the service loads: a syntax
// error there stops the service at every start.
func envFileCheck(path string) Check {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Check{Name: "env_file", Status: OK, Message: path + " not present (optional)"}
	}
	if err != nil {
		return Check{Name: "env_file", Status: Fail, Message: err.Error(),
			Fix: "make it readable by the service account (chmod 0640, group of the service account)"}
	}
	defer f.Close()
	vars, err := service.ParseEnvFile(f, path)
	if err != nil {
		return Check{Name: "env_file", Status: Fail, Message: err.Error(),
			Fix: "write KEY=VALUE lines (# for comments, quotes for values with spaces)"}
	}
	msg := fmt.Sprintf("%s sets %d variables", path, len(vars))
	if fi, err := f.Stat(); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o004 != 0 {
		return Check{Name: "env_file", Status: Warn, Message: msg + " and is readable by every user",
			Fix: "chmod o-rwx " + path + " (it usually holds secrets)"}
	}
	return Check{Name: "env_file", Status: OK, Message: msg}
}

func portCheck(addr string) Check {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return Check{Name: "metrics_port", Status: Fail, Message: fmt.Sprintf("cannot listen on %s: %v", addr, err),
			Fix: "stop the process holding the port (ss -ltnp / netstat -ano) or choose another --metrics-addr"}
	}
	ln.Close()
	return Check{Name: "metrics_port", Status: OK, Message: addr + " is free"}
}

func serviceCheck(ctx context.Context, o Options) Check {
	st, err := o.Service(ctx)
	switch {
	case err != nil:
		return Check{Name: "service", Status: Warn, Message: "cannot query the service: " + err.Error()}
	case !st.Installed:
		return Check{Name: "service", Status: Warn, Message: fmt.Sprintf("%s service %s is not installed (fine when you run the graph by hand)", st.Manager, st.Name),
			Fix: "schnitzel service install --manager " + string(st.Manager) + userFlag(o) + " --graph GRAPH"}
	case !st.Running:
		return Check{Name: "service", Status: Warn, Message: fmt.Sprintf("%s service %s is installed but not running (%s)", st.Manager, st.Name, st.Detail),
			Fix: "schnitzel service start --manager " + string(st.Manager) + userFlag(o) + "; see its logs for why it stopped"}
	}
	return Check{Name: "service", Status: OK, Message: fmt.Sprintf("%s service %s is running", st.Manager, st.Name)}
}

// resolve makes a graph path absolute against the working directory.
func resolve(workDir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(workDir, p)
}
