package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
)

// Installer installs and controls services on a Host. Every Install either
// completes or undoes the steps it took (nothing half-installed).
type Installer struct {
	Host Host
	// GOOS of the host (default runtime.GOOS); a manager of another OS is refused.
	GOOS string
	// Root prefixes every file path the installer reads or writes. Tests set
	// it to a temporary directory; empty means the real file system.
	Root string
	// Force replaces an existing definition (the old one is restored if the
	// install fails).
	Force bool
	// Out receives one line per step taken or undone (nil: discarded).
	Out io.Writer
}

// State is what Status reports.
type State struct {
	Manager   Manager `json:"manager"`
	Name      string  `json:"name"`
	Path      string  `json:"path,omitempty"`
	Installed bool    `json:"installed"`
	Running   bool    `json:"running"`
	// Detail is the manager's own word (systemd ActiveState, launchd state,
	// SCM state, task status).
	Detail string `json:"detail"`
}

func (in *Installer) goos() string {
	if in.GOOS != "" {
		return in.GOOS
	}
	return runtime.GOOS
}

func (in *Installer) logf(format string, args ...any) {
	if in.Out != nil {
		fmt.Fprintf(in.Out, format+"\n", args...)
	}
}

// fsPath maps a definition path to the file system (under Root in tests).
func (in *Installer) fsPath(p string) string {
	if in.Root == "" {
		return p
	}
	return filepath.Join(in.Root, filepath.FromSlash(p))
}

// checkHost refuses a manager that does not belong to this OS and a system
// scope without privileges.
func (in *Installer) checkHost(c Config, verb string) error {
	if goos := c.Manager.GOOS(); goos != in.goos() {
		return usageErr(fmt.Sprintf("run it on %s, or print the definition here with `schnitzel service render --manager %s`", goos, c.Manager),
			"cannot %s a %s service on %s", verb, c.Manager, in.goos())
	}
	if !c.User && !in.Host.IsAdmin() {
		fix := "run it as root (sudo schnitzel service " + verb + " ...), or add --user for a per-user service"
		if in.goos() == "windows" {
			fix = "run it from an elevated prompt (Run as administrator)"
			if c.Manager == TaskScheduler {
				fix += ", or add --user for a per-user task"
			}
		}
		return usageErr(fix, "%s a system-wide %s service needs administrator rights", verb, c.Manager)
	}
	return nil
}

// checkFiles verifies the files the definition points at, on this host.
func (in *Installer) checkFiles(c Config) error {
	fi, err := os.Stat(in.fsPath(c.Binary))
	switch {
	case err != nil:
		return usageErr("build or copy the schnitzel binary there, or pass --binary PATH", "binary %s: %v", c.Binary, err)
	case !fi.Mode().IsRegular():
		return usageErr("pass --binary with the path of the schnitzel executable", "binary %s is not a regular file", c.Binary)
	case in.goos() != "windows" && fi.Mode().Perm()&0o111 == 0:
		return usageErr("chmod +x "+c.Binary, "binary %s is not executable", c.Binary)
	}
	if !c.Serve {
		fi, err = os.Stat(in.fsPath(c.Graph))
		if err != nil {
			return usageErr("pass --graph with the path of an existing graph file", "graph %s: %v", c.Graph, err)
		}
		if !fi.Mode().IsRegular() {
			return usageErr("pass --graph with a graph file, not a directory", "graph %s is not a regular file", c.Graph)
		}
	}
	if c.EnvFile != "" {
		if _, err := os.Stat(in.fsPath(c.EnvFile)); err != nil {
			return usageErr("create it (KEY=VALUE lines) or drop --env-file", "env file %s: %v", c.EnvFile, err)
		}
	}
	return nil
}

// Install checks the inputs, then writes and registers the definition. On
// any failure it undoes what it did and returns the error.
func (in *Installer) Install(ctx context.Context, c Config) (Definition, error) {
	def, err := Render(c)
	if err != nil {
		return def, err
	}
	c, _ = c.normalize()
	if err := in.checkHost(c, "install"); err != nil {
		return def, err
	}
	if err := in.checkFiles(c); err != nil {
		return def, err
	}
	if def.Path != "" && !in.Force {
		if _, err := os.Stat(in.fsPath(def.Path)); err == nil {
			return def, usageErr("run `schnitzel service uninstall` with the same --manager/--name first, or pass --force to replace it",
				"already installed: %s exists", def.Path)
		}
	}
	rb := &rollback{in: in}
	switch c.Manager {
	case Systemd:
		err = in.installSystemd(ctx, c, def, rb)
	case Launchd:
		err = in.installLaunchd(ctx, c, def, rb)
	case TaskScheduler:
		err = in.installTask(ctx, c, def, rb)
	case Windows:
		err = in.installSCM(ctx, c, def, rb)
	}
	if err != nil {
		if rerr := rb.undo(); rerr != nil {
			return def, fmt.Errorf("%w\nrollback incomplete, clean up by hand: %v", err, rerr)
		}
		return def, fmt.Errorf("%w\n(rolled back: nothing was left installed)", err)
	}
	return def, nil
}

// rollback collects undo steps; undo runs them in reverse order.
type rollback struct {
	in    *Installer
	steps []undoStep
}

type undoStep struct {
	desc string
	fn   func() error
}

func (r *rollback) add(desc string, fn func() error) { r.steps = append(r.steps, undoStep{desc, fn}) }

func (r *rollback) undo() error {
	var errs []error
	for i := len(r.steps) - 1; i >= 0; i-- {
		s := r.steps[i]
		r.in.logf("undo: %s", s.desc)
		if err := s.fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.desc, err))
		}
	}
	return errors.Join(errs...)
}

// mkdirs creates the deployment directories that are missing, undoing
// each creation on rollback (only directories it created are removed).
func (in *Installer) mkdirs(c Config, rb *rollback, owner string) error {
	dirs := c.Paths.Dirs()
	if c.Serve {
		// serve writes graph files there (the API's PUT): the service's own.
		dirs = append(dirs, paths.Dir{Class: "graphs", Path: c.ServeGraphsDir()})
	}
	for _, d := range dirs {
		p := in.fsPath(d.Path)
		// Find the top-most missing ancestor so rollback removes all we made.
		top := ""
		for q := p; ; q = filepath.Dir(q) {
			if _, err := os.Stat(q); err == nil {
				break
			}
			top = q
			if filepath.Dir(q) == q {
				break
			}
		}
		perm := os.FileMode(0o750)
		if d.Class == "config" {
			perm = 0o755
		}
		if top != "" {
			if err := os.MkdirAll(p, perm); err != nil {
				return fmt.Errorf("create %s directory %s: %w", d.Class, d.Path, err)
			}
			in.logf("created %s directory %s", d.Class, d.Path)
			rb.add("remove "+top, func() error { return os.RemoveAll(top) })
		}
		if owner != "" && d.Class != "config" {
			if err := in.chown(p, owner, rb); err != nil {
				return fmt.Errorf("give %s directory %s to %s: %w", d.Class, d.Path, owner, err)
			}
		}
	}
	return nil
}

// writeFile writes data atomically and registers the undo that restores
// the previous content (or removes the file).
func (in *Installer) writeFile(p string, data []byte, perm os.FileMode, rb *rollback) error {
	undo, err := in.writeFileUndo(p, data, perm)
	if err != nil {
		return err
	}
	rb.add("restore "+p, undo)
	return nil
}

// writeFileUndo writes data atomically and returns the function that puts
// back what was there before.
func (in *Installer) writeFileUndo(p string, data []byte, perm os.FileMode) (func() error, error) {
	fp := in.fsPath(p)
	old, err := os.ReadFile(fp)
	existed := err == nil
	if existed && !in.Force {
		return nil, usageErr("run `schnitzel service uninstall` with the same --manager/--name first, or pass --force to replace it",
			"already installed: %s exists", p)
	}
	if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	tmp := fp + ".schnitzel-tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Chmod(tmp, perm); err != nil { // WriteFile's perm is masked by umask
		os.Remove(tmp)
		return nil, fmt.Errorf("chmod %s: %w", p, err)
	}
	if err := os.Rename(tmp, fp); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("install %s: %w", p, err)
	}
	in.logf("wrote %s", p)
	if existed {
		return func() error { return os.WriteFile(fp, old, perm) }, nil
	}
	return func() error {
		if err := os.Remove(fp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}, nil
}

// run runs a manager command and registers its undo (if any) on success.
func (in *Installer) run(ctx context.Context, rb *rollback, undo []string, name string, args ...string) error {
	in.logf("run: %s %s", name, strings.Join(args, " "))
	if _, err := in.Host.Run(ctx, name, args...); err != nil {
		return err
	}
	if undo != nil && rb != nil {
		rb.add("run "+strings.Join(undo, " "), func() error {
			_, err := in.Host.Run(context.Background(), undo[0], undo[1:]...)
			return err
		})
	}
	return nil
}
