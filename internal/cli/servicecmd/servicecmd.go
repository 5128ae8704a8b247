// Package servicecmd implements `schnitzel service render|install|uninstall|
// start|stop|status`: run a graph under systemd, launchd, the Windows service
// manager or Windows Task Scheduler.
package servicecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
	"github.com/schnitzel-stream/schnitzel/internal/ops/service"
)

// Validator checks a graph file (load + validate + plugin allowlist).
type Validator func(graphPath string) error

// Options are the dependencies of the command; zero values use the real system.
type Options struct {
	// Validate checks the graph before render/install (nil: existence only).
	Validate Validator
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Installer acts on the system (default: the local host).
	Installer *service.Installer
	// GOOS of the host (default runtime.GOOS).
	GOOS string
	// Executable is this binary's path (default os.Executable).
	Executable func() (string, error)
}

// Command returns the service command. validate is the graph validator the
// lead wires in (nil: the graph file must only exist).
func Command(validate func(graphPath string) error) *cobra.Command {
	return NewCommand(Options{Validate: validate})
}

type flags struct {
	manager, name, graph, envFile, binary, runAs string
	user, asJSON, force, serve                   bool
}

// NewCommand returns the service command with explicit dependencies.
func NewCommand(o Options) *cobra.Command {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.GOOS == "" {
		o.GOOS = runtime.GOOS
	}
	if o.Executable == nil {
		o.Executable = os.Executable
	}
	var f flags
	root := &cobra.Command{
		Use:   "service",
		Short: "Install and control the OS service that runs a graph",
		Long: `Run a graph as an OS service: systemd (Linux), launchd (macOS), the Windows
service manager (windows) or Windows Task Scheduler (taskscheduler).

  schnitzel service render  --graph G   print the exact definition, touch nothing
  schnitzel service install --graph G   write and register it (rolled back on failure)
  schnitzel service start|stop|status|uninstall

The service runs "schnitzel --graph G" with the state directory as its working
directory (relative paths in the graph resolve there) and the env file from the
config directory (see "schnitzel paths"). Arguments after "--" are appended to
the service's command line, e.g. -- --log-file /var/log/schnitzel-stream/x.log.

With --serve instead of --graph the service runs "schnitzel serve --graphs
<config>/graphs.d --state <state>/serve": every graph of that directory, with
the control API on 127.0.0.1:18700 (drive it with schnitzel graphs/tap/top;
add serve flags after "--", e.g. -- --allow-env CAMERA_URL).`,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&f.manager, "manager", string(service.DefaultManager(o.GOOS)), "systemd|launchd|windows|taskscheduler")
	pf.StringVar(&f.name, "name", service.DefaultName, "service name (several graphs: one name each)")
	pf.BoolVar(&f.user, "user", false, "per-user service (systemd --user, LaunchAgent, logon task)")

	defFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&f.graph, "graph", "", "graph file the service runs (required unless --serve)")
		c.Flags().BoolVar(&f.serve, "serve", false, "run schnitzel serve (every graph of <config>/graphs.d, the control API) instead of one graph")
		c.Flags().StringVar(&f.envFile, "env-file", "", "environment file (default: <config>/schnitzel-stream.env, optional)")
		c.Flags().StringVar(&f.binary, "binary", "", "schnitzel executable the service runs (default: this binary)")
		c.Flags().StringVar(&f.runAs, "run-as", "", "account of a system-wide service (systemd default: schnitzel, created if missing)")
		c.MarkFlagsMutuallyExclusive("graph", "serve")
		c.MarkFlagsOneRequired("graph", "serve")
	}

	render := &cobra.Command{
		Use:   "render --graph G | --serve [-- extra args]",
		Short: "Print the service definition without touching the system",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(cmd, f, args, forRender)
			if err != nil {
				return err
			}
			def, err := service.Render(cfg)
			if err != nil {
				return wrap(err)
			}
			if f.asJSON {
				return writeJSON(cmd.OutOrStdout(), def)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), def.Content)
			return err
		},
	}
	defFlags(render)
	render.Flags().BoolVar(&f.asJSON, "json", false, "print {manager, name, path, content} as JSON")

	install := &cobra.Command{
		Use:   "install --graph G | --serve [-- extra args]",
		Short: "Install the service (rolled back on failure)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(cmd, f, args, forInstall)
			if err != nil {
				return err
			}
			in := o.installer(cmd)
			in.Force = f.force
			def, err := in.Install(cmd.Context(), cfg)
			if err != nil {
				return wrap(err)
			}
			where := def.Path
			if where == "" {
				where = "the " + string(cfg.Manager) + " manager"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "installed %s service %s (%s)\n", cfg.Manager, def.Name, where)
			fmt.Fprintf(cmd.ErrOrStderr(), "working directory: %s (relative paths in the graph resolve there)\n", cfg.Paths.State)
			if cfg.Serve {
				fmt.Fprintf(cmd.ErrOrStderr(), "graphs: %s (one NAME.yaml per graph; or schnitzel graphs apply -f FILE)\n", cfg.ServeGraphsDir())
				fmt.Fprintf(cmd.ErrOrStderr(), "API token: created at first start in %s (the clients read it from there: run them as the service account or root, or pass --token-file)\n",
					paths.Join(cfg.Manager.GOOS(), cfg.ServeStateDir(), "token"))
			}
			if cfg.Manager == service.Launchd {
				fmt.Fprintln(cmd.ErrOrStderr(), "launchd started it (RunAtLoad); check with: schnitzel service status --manager launchd")
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "start it with: schnitzel service start --manager %s --name %s%s\n",
					cfg.Manager, def.Name, map[bool]string{true: " --user"}[cfg.User])
			}
			return nil
		},
	}
	defFlags(install)
	install.Flags().BoolVar(&f.force, "force", false, "replace an existing definition")

	verb := func(use, short string, fn func(*service.Installer, context.Context, service.Config) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := o.config(cmd, f, nil, forTarget)
				if err != nil {
					return err
				}
				return wrap(fn(o.installer(cmd), cmd.Context(), cfg))
			},
		}
	}
	uninstall := verb("uninstall", "Stop and remove the service (directories and data are kept)", (*service.Installer).Uninstall)
	start := verb("start", "Start the installed service", (*service.Installer).Start)
	stop := verb("stop", "Stop the service gracefully", (*service.Installer).Stop)
	status := &cobra.Command{
		Use: "status", Short: "Show whether the service is installed and running", Args: cobra.NoArgs,
		Long: `Show whether the service is installed and running. Exit codes (as LSB and
systemctl status): 0 installed and running, 3 installed but stopped, 4 not
installed, 2 usage error.`,
		SilenceUsage: true, SilenceErrors: true, // a stopped service is an answer, not a usage error
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd, f, nil, forTarget)
			if err != nil {
				return err
			}
			st, err := o.installer(cmd).Status(cmd.Context(), cfg)
			if err != nil {
				return wrap(err)
			}
			if f.asJSON {
				if err := writeJSON(cmd.OutOrStdout(), st); err != nil {
					return err
				}
				return statusExit(st)
			}
			state := "not installed"
			if st.Installed {
				state = "installed, stopped"
				if st.Running {
					state = "installed, running"
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s): %s [%s]\n", st.Name, st.Manager, state, st.Detail)
			return statusExit(st)
		},
	}
	status.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	root.AddCommand(render, install, uninstall, start, stop, status)
	return root
}

func (o Options) installer(cmd *cobra.Command) *service.Installer {
	if o.Installer != nil {
		in := *o.Installer
		if in.Out == nil {
			in.Out = cmd.ErrOrStderr()
		}
		return &in
	}
	return &service.Installer{Host: service.LocalHost{}, GOOS: o.GOOS, Out: cmd.ErrOrStderr()}
}

// purpose says what a command needs from its flags.
type purpose int

const (
	forTarget  purpose = iota // uninstall, start, stop, status: manager and name
	forRender                 // the whole definition; the graph may be elsewhere
	forInstall                // the whole definition; the graph must exist and validate
)

// config turns flags into a service.Config.
func (o Options) config(cmd *cobra.Command, f flags, args []string, use purpose) (service.Config, error) {
	m, err := service.ParseManager(f.manager)
	if err != nil {
		return service.Config{}, exitcode.New(exitcode.Usage, err)
	}
	goos := m.GOOS()
	p, err := paths.For(goos, f.user, o.Getenv)
	if err != nil {
		return service.Config{}, exitcode.New(exitcode.Usage, err)
	}
	cfg := service.Config{Manager: m, Name: f.name, User: f.user, Paths: p, Home: o.Getenv("HOME"), RunAs: f.runAs}
	if cfg.Home == "" && goos == o.GOOS {
		cfg.Home, _ = os.UserHomeDir()
	}
	if m == service.TaskScheduler && f.user && cfg.RunAs == "" && goos == o.GOOS {
		if u := o.Getenv("USERNAME"); u != "" {
			cfg.RunAs = u
			if d := o.Getenv("USERDOMAIN"); d != "" {
				cfg.RunAs = d + `\` + u
			}
		}
	}
	if use == forTarget {
		return cfg, nil
	}
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		cfg.Args = args[dash:]
		args = args[:dash]
	}
	if len(args) > 0 {
		return cfg, exitcode.Errorf(exitcode.Usage, "unexpected arguments %q (put extra service arguments after --)", args)
	}
	local := goos == o.GOOS
	cfg.Graph, cfg.EnvFile, cfg.Binary, cfg.Serve = f.graph, f.envFile, f.binary, f.serve
	// Before any path is used or printed: a control character would
	// inject directives into the definition.
	if err := service.CheckValues(cfg); err != nil {
		return cfg, wrap(err)
	}
	if local {
		// Make paths absolute on this host; the service does not run in
		// the operator's current directory.
		for _, ptr := range []*string{&cfg.Graph, &cfg.EnvFile, &cfg.Binary} {
			if *ptr != "" {
				abs, err := filepath.Abs(*ptr)
				if err != nil {
					return cfg, exitcode.New(exitcode.Usage, err)
				}
				*ptr = abs
			}
		}
		if cfg.Binary == "" {
			exe, err := o.Executable()
			if err == nil {
				exe, err = filepath.EvalSymlinks(exe)
			}
			if err != nil {
				return cfg, exitcode.Errorf(exitcode.Usage, "cannot find this executable (%v)\n  fix: pass --binary PATH", err)
			}
			cfg.Binary = exe
		}
	} else if cfg.Binary == "" {
		// Rendering for another OS: the conventional install location.
		cfg.Binary = map[string]string{
			"windows": `C:\Program Files\Schnitzel\schnitzel.exe`,
		}[goos]
		if cfg.Binary == "" {
			cfg.Binary = "/usr/local/bin/schnitzel"
		}
	}
	stderr := cmd.ErrOrStderr()
	if use == forInstall && !local {
		return cfg, nil // the installer refuses another OS's manager, saying why
	}
	if cfg.Serve {
		// serve validates each graph itself (an invalid one is "failed"
		// and the rest run); only the env file must load.
		if err := checkEnvFile(stderr, cfg, p.EnvFile, use == forInstall); err != nil {
			return cfg, err
		}
	} else if err := checkGraph(stderr, cfg, p.EnvFile, o.Validate, use == forInstall); err != nil {
		return cfg, err
	}
	if w := service.RootWarning(cfg); w != "" {
		fmt.Fprintf(stderr, "WARNING: %s\n", w)
	}
	return cfg, nil
}

// checkGraph checks the graph the same way for every manager. install: it
// must exist and validate. render: a graph that does not exist on this
// machine (a unit rendered for another one) is a warning; one that exists
// is validated. The env file (explicit, or the default one) is loaded
// first: the service runs with it, and ${oc.env:...} references need it.
func checkGraph(w io.Writer, cfg service.Config, defaultEnv string, validate Validator, install bool) error {
	graph := cfg.Graph
	fi, err := os.Stat(graph)
	if err != nil {
		if !install && errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(w, "WARNING: graph %s does not exist on this machine; rendering anyway (install requires it to exist and validate)\n", graph)
			return nil
		}
		return exitcode.Errorf(exitcode.Usage, "graph %s: %v\n  fix: pass --graph with the path of an existing graph file", graph, err)
	}
	if fi.IsDir() {
		return exitcode.Errorf(exitcode.Usage, "graph %s is a directory\n  fix: pass --graph with a graph file", graph)
	}
	if err := checkEnvFile(w, cfg, defaultEnv, install); err != nil {
		return err
	}
	if validate != nil {
		if err := validate(graph); err != nil {
			return exitcode.Errorf(exitcode.Usage, "graph %s is not valid: %v\n  fix: check it with `schnitzel validate --graph %s`", graph, err, graph)
		}
	}
	return nil
}

// checkEnvFile loads the env file the service will use (explicit, or the
// default one when it exists): a malformed one fails here, not at start.
func checkEnvFile(w io.Writer, cfg service.Config, defaultEnv string, install bool) error {
	envFile := cfg.EnvFile
	if envFile == "" {
		envFile = defaultEnv
	} else if _, err := os.Stat(envFile); !install && errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(w, "WARNING: env file %s does not exist on this machine; the graph is validated without it\n", envFile)
	}
	if err := service.LoadEnvFile(envFile); err != nil {
		return exitcode.Errorf(exitcode.Usage, "%v\n  fix: write KEY=VALUE lines in %s", err, envFile)
	}
	return nil
}

// wrap maps service errors to exit codes: operator errors 2, others 1.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitcode.Error
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, service.ErrUsage) {
		return exitcode.New(exitcode.Usage, err)
	}
	if errors.Is(err, fs.ErrPermission) {
		return exitcode.Errorf(exitcode.Usage, "%v\n  fix: run it with the rights to write there (root / an elevated prompt), or use --user", err)
	}
	return exitcode.New(exitcode.Runtime, err)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Exit codes of `service status`, as LSB init scripts and systemctl
// status use them: a script can tell "running" from "stopped" from
// "nothing installed" without parsing text.
const (
	StatusStopped      = 3
	StatusNotInstalled = 4
)

func statusExit(st service.State) error {
	switch {
	case !st.Installed:
		return exitcode.New(StatusNotInstalled, nil)
	case !st.Running:
		return exitcode.New(StatusStopped, nil)
	}
	return nil
}
