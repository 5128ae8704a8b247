// Package servecmd implements `schnitzel serve`: the control plane's
// process. It runs every graph of a graphs directory under one Supervisor
// (internal/serve) and exposes them through the HTTP API (internal/serve/api,
// plus upstream's routes and the fleet from internal/serve/compat), secure
// by default: a bearer token (generated at first start), loopback unless TLS
// and a token file are given, every mutation and refusal audited.
package servecmd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/schnitzel-stream/schnitzel/internal/netaddr"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/ops/sdnotify"
	"github.com/schnitzel-stream/schnitzel/internal/ops/service"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/internal/serve/console"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// DefaultListen is serve's default address: loopback only.
const DefaultListen = "127.0.0.1:18700"

// Options are what the command needs from the App.
type Options struct {
	Registry  *plugin.Registry
	Prefixes  []string // plugin prefixes beside the defaults (cli.WithAllowedPrefixes)
	Getenv    func(string) string
	LookupEnv func(string) (string, bool)
	Stderr    io.Writer
	// Signals delivers SIGINT/SIGTERM; nil: none (tests cancel the context).
	Signals <-chan os.Signal
	// HardExit is called on a second signal (default os.Exit).
	HardExit func(code int)
	// Limits resolves the loader's hostile-input limits (the --max-graph-*
	// flags and variables); nil: the defaults.
	Limits func() (engine.Limits, error)
	// Logger builds the logger from the --log-* flags; nil: text on Stderr.
	Logger func(cmd *cobra.Command) (*slog.Logger, func(), error)
	// Presets holds upstream's preset graph files by name (configs/graphs):
	// the /api/v1/presets routes run them.
	Presets fs.FS
}

type flags struct {
	listen, graphs, state, tokenFile, auditLog string
	tlsCert, tlsKey                            string
	allowedHosts, corsOrigins, allowEnv        []string
	maxBody                                    int64
	auditMaxBytes                              int64
	auditMaxFiles                              int
	drain, backoffMin, backoffMax, watch       time.Duration
	maxTaps                                    int
}

// Command returns the serve command.
func Command(o Options) *cobra.Command {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.HardExit == nil {
		o.HardExit = os.Exit
	}
	var f flags
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR] [--graphs DIR] [--state DIR] [--token-file F]",
		Short: "Run, supervise and hot-reload many graphs behind an HTTP API",
		Long: `Run every graph file (NAME.yaml) of the graphs directory in this one process,
each its own runtime: a graph that fails restarts with bounded exponential
backoff, a changed file (or a PUT over the API) is validated and hot-reloaded,
and the desired state (which graphs exist, which are stopped) survives
restarts. The HTTP API (docs/operations.md, "Control plane") is secure by
default:

  - every route but GET /api/v1/health needs "Authorization: Bearer TOKEN";
    without --token-file a random token is created at first start in
    STATE/token (mode 0600) and reused; its path is logged, never the token
  - the web console is served at / from the binary: open the one-time
    login URL printed at each start, or paste the token on its login page
  - only loopback addresses unless --tls-cert/--tls-key and --token-file
  - the Host header must be loopback or in --allowed-hosts; mutations must be
    JSON or YAML; CORS closed unless --cors-origin; bodies size-limited
  - graph files are loaded under the hostile-input limits (--max-graph-*);
    ${oc.env:NAME} reads only SS_* variables and those named by --allow-env
  - every mutation and refusal is appended to the audit log

The clients: schnitzel graphs, tap, top, fleet (they find the token file
of the default state directory on their own).

Exit codes: 0 stopped by a signal, 1 runtime error (state directory in use
by another serve, unreadable graphs directory, port taken), 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return service.RunAsService(cmd.Context(), func(ctx context.Context) error {
				return o.run(ctx, cmd, f)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", DefaultListen, "HOST:PORT to serve the API on (port 0: any free port, printed at start)")
	fl.StringVar(&f.graphs, "graphs", "", "graphs directory, one NAME.yaml per graph (default: <config>/graphs.d, see 'schnitzel paths')")
	fl.StringVar(&f.state, "state", "", "state directory: state.json, serve.lock, token, audit log (default: <state>/serve)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the API token (default: STATE/token, created at first start)")
	fl.StringVar(&f.auditLog, "audit-log", "", "audit log file, JSON lines (default: STATE/audit.jsonl)")
	fl.Int64Var(&f.auditMaxBytes, "audit-max-bytes", audit.DefaultMaxBytes, "rotate the audit log at this size")
	fl.IntVar(&f.auditMaxFiles, "audit-max-files", audit.DefaultMaxFiles, "rotated audit files to keep")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	fl.StringSliceVar(&f.allowedHosts, "allowed-hosts", nil, "Host header names/addresses accepted beside loopback ones (comma list or repeated)")
	fl.StringSliceVar(&f.corsOrigins, "cors-origin", nil, "browser origins allowed by CORS (default: none, CORS closed)")
	fl.StringArrayVar(&f.allowEnv, "allow-env", nil, "environment variable a graph's ${oc.env:NAME} may read beside SS_* (repeatable)")
	fl.Int64Var(&f.maxBody, "max-body-bytes", 4<<20, "largest request body")
	fl.DurationVar(&f.drain, "drain-timeout", 5*time.Second, "bound on the drain of a stopping or reloading graph")
	fl.DurationVar(&f.backoffMin, "backoff-min", time.Second, "first restart delay of a failed graph")
	fl.DurationVar(&f.backoffMax, "backoff-max", time.Minute, "longest restart delay of a failed graph")
	fl.DurationVar(&f.watch, "watch-interval", time.Second, "how often the graphs directory is checked for changed files (0: never)")
	fl.IntVar(&f.maxTaps, "max-taps", 64, "open tap streams in total")
	return cmd
}

func usage(format string, args ...any) error {
	return exitcode.Errorf(exitcode.Usage, format, args...)
}

func (o Options) run(ctx context.Context, cmd *cobra.Command, f flags) error {
	logger, closeLog := slog.New(slog.NewTextHandler(o.Stderr, nil)), func() {}
	if o.Logger != nil {
		var err error
		if logger, closeLog, err = o.Logger(cmd); err != nil {
			return err
		}
	}
	defer closeLog()

	tlsConfig, err := loadTLS(f)
	if err != nil {
		return err
	}
	useTLS := tlsConfig != nil
	if err := checkListen(f.listen, useTLS, f.tokenFile != ""); err != nil {
		return err
	}
	for _, n := range []struct {
		v    int64
		flag string
	}{{f.maxBody, "max-body-bytes"}, {int64(f.maxTaps), "max-taps"}, {f.auditMaxBytes, "audit-max-bytes"}, {int64(f.auditMaxFiles), "audit-max-files"}} {
		if n.v <= 0 {
			return usage("--%s must be positive, got %d", n.flag, n.v)
		}
	}
	if f.backoffMin <= 0 || f.backoffMax < f.backoffMin || f.drain <= 0 {
		return usage("--backoff-min must be positive and at most --backoff-max, and --drain-timeout positive")
	}
	for _, name := range f.allowEnv {
		if name == "" || strings.ContainsAny(name, "= \t\n") {
			return usage("--allow-env %q is not a variable name", name)
		}
	}
	limits := engine.Limits{}
	if o.Limits != nil {
		if limits, err = o.Limits(); err != nil {
			return err
		}
	}

	graphsDir, stateDir := f.graphs, f.state
	if graphsDir == "" || stateDir == "" {
		d, err := DefaultDirs(o.Getenv)
		if err != nil {
			return usage("%v\n  fix: pass --graphs DIR and --state DIR", err)
		}
		if graphsDir == "" {
			graphsDir = d.Graphs
		}
		if stateDir == "" {
			stateDir = d.State
		}
	}
	if graphsDir, err = filepath.Abs(graphsDir); err != nil {
		return usage("--graphs: %v", err)
	}
	if stateDir, err = filepath.Abs(stateDir); err != nil {
		return usage("--state: %v", err)
	}
	if err := checkGraphsDir(graphsDir); err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return exitcode.Errorf(exitcode.Runtime, "state directory %s: %v\n  fix: pass --state with a directory this account can write", stateDir, err)
	}

	auditPath := f.auditLog
	if auditPath == "" {
		auditPath = filepath.Join(stateDir, "audit.jsonl")
	}
	auditLog, err := audit.Open(auditPath, f.auditMaxBytes, f.auditMaxFiles)
	if err != nil {
		return exitcode.Errorf(exitcode.Runtime, "audit log: %v\n  fix: pass --audit-log with a file this account can write", err)
	}
	defer auditLog.Close()

	engineOpts := engine.Options{
		Registry: o.Registry, Getenv: o.Getenv, Limits: limits, Prefixes: o.Prefixes, Logger: logger,
		StopTimeout: f.drain,
	}
	sup, err := serve.New(serve.Config{
		GraphsDir:     graphsDir,
		StateDir:      stateDir,
		Engine:        engineOpts,
		AllowEnv:      f.allowEnv,
		LookupEnv:     o.LookupEnv,
		BackoffMin:    f.backoffMin,
		BackoffMax:    f.backoffMax,
		DrainTimeout:  f.drain,
		WatchInterval: watchInterval(f.watch),
		MaxTaps:       f.maxTaps,
		Audit:         auditLog,
		Logger:        logger,
	})
	if err != nil {
		if errors.Is(err, serve.ErrLocked) {
			return exitcode.Errorf(exitcode.Runtime, "%v\n  fix: another schnitzel serve uses the state directory %s; stop it, or pass another --state", err, stateDir)
		}
		return exitcode.Errorf(exitcode.Runtime, "%v", err)
	}
	defer sup.Close()

	// The token: after the lock, so that a refused second serve creates
	// none.
	tokenPath := f.tokenFile
	if tokenPath == "" {
		tokenPath = filepath.Join(stateDir, TokenFileName)
	}
	token, created, err := loadToken(tokenPath, f.tokenFile == "")
	if err != nil {
		return err
	}
	if w := tokenModeWarning(tokenPath); w != "" {
		logger.Warn(w)
	}
	code, err := randomHex(16)
	if err != nil {
		return err
	}

	srv := api.New(sup, api.Config{
		Token:        token,
		LoginCode:    code,
		AllowedHosts: f.allowedHosts,
		CORSOrigins:  f.corsOrigins,
		MaxBody:      f.maxBody,
		MaxTaps:      f.maxTaps,
		Audit:        auditLog,
		Plugins:      func() any { return pluginInfos(o.Registry) },
		Logger:       logger,
		Console:      console.Handler(),
	})
	addRoutes(srv, routeDeps{sup: sup, engine: engineOpts, lookupEnv: filteredLookup(o.LookupEnv, f.allowEnv),
		presets: o.Presets, audit: auditLog, graphsDir: graphsDir, stateDir: stateDir})

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return exitcode.Errorf(exitcode.Runtime, "listen %s: %v\n  fix: pass --listen with a free HOST:PORT", f.listen, err)
	}
	httpSrv := api.NewHTTPServer(srv, f.listen)
	httpSrv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	base := scheme + "://" + urlHost(ln.Addr().(*net.TCPAddr), f.listen)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runDone := make(chan error, 1)
	go func() { runDone <- sup.Run(runCtx) }()
	serveDone := make(chan error, 1)
	go func() {
		var err error
		if useTLS {
			httpSrv.TLSConfig = tlsConfig
			err = httpSrv.ServeTLS(ln, "", "")
		} else {
			err = httpSrv.Serve(ln)
		}
		serveDone <- err
	}()

	tokenNote := "token file (pass --token-file to clients elsewhere)"
	if created {
		tokenNote = "token file created (mode 0600)"
	}
	logger.Info("schnitzel serve listening", "url", base, "graphs", graphsDir, "state", stateDir, "audit_log", auditPath)
	logger.Info(tokenNote, "token_file", tokenPath)
	if host, _, _ := net.SplitHostPort(f.listen); !isLoopback(host) && len(f.allowedHosts) == 0 {
		// The Host check (DNS rebinding) refuses every name but loopback:
		// remote clients need theirs listed.
		logger.Warn("listening beyond loopback, but no --allowed-hosts: remote clients are refused (421) until the name or address they connect to is listed",
			"listen", f.listen)
	}
	// Printed on stderr, never into --log-file: a console URL for the
	// person who started it. The code works once and only for this run.
	if f := cmd.Flags().Lookup("log-format"); f != nil && strings.EqualFold(f.Value.String(), "json") {
		slog.New(slog.NewJSONHandler(o.Stderr, nil)).Info("serving", "url", base, "console_login", base+"/login?code="+code)
	} else {
		fmt.Fprintf(o.Stderr, "serving on %s\nconsole login (one-time): %s/login?code=%s\n", base, base, code)
		fmt.Fprintf(o.Stderr, "clients (schnitzel graphs|tap|top|fleet): export SCHNITZEL_SERVER=%s SCHNITZEL_TOKEN_FILE=%s\n", base, tokenPath)
	}
	_ = auditLog.Append(audit.Event{Actor: "serve", Action: "serve.start", Target: base, Status: "ok", Reason: "ok",
		Meta: map[string]any{"graphs": graphsDir, "state": stateDir, "tls": useTLS}})
	_, _ = sdnotify.Notify(sdnotify.Ready)
	go sdnotify.RunWatchdog(runCtx, func() error { return responsive(sup) })

	var runErr error
	select {
	case <-o.signal(runCtx, logger):
	case err := <-serveDone:
		// The listener failed (TLS files unreadable, ...): stop everything.
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			runErr = exitcode.Errorf(exitcode.Runtime, "serving %s: %v", base, err)
		}
	case err := <-runDone:
		runDone <- err
	}
	_, _ = sdnotify.Notify(sdnotify.Stopping)
	// Stop accepting first, then stop the graphs (which ends tap streams,
	// so that Shutdown does not wait on them), then close what is left.
	shutCtx, cancelShut := context.WithTimeout(context.Background(), f.drain+5*time.Second)
	defer cancelShut()
	shutDone := make(chan struct{})
	go func() { _ = httpSrv.Shutdown(shutCtx); close(shutDone) }()
	stop()
	if err := <-runDone; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
		runErr = exitcode.Errorf(exitcode.Runtime, "supervisor: %v", err)
	}
	select {
	case <-shutDone:
	case <-time.After(2 * time.Second):
		_ = httpSrv.Close()
		<-shutDone
	}
	_ = auditLog.Append(audit.Event{Actor: "serve", Action: "serve.stop", Target: base, Status: "ok", Reason: "ok"})
	logger.Info("schnitzel serve stopped")
	return runErr
}

// signal returns a channel closed on the first SIGINT/SIGTERM; a second
// one (more than a second later: a terminal delivers Ctrl-C twice) exits
// at once.
func (o Options) signal(ctx context.Context, logger *slog.Logger) <-chan struct{} {
	ch := make(chan struct{})
	if o.Signals == nil {
		go func() { <-ctx.Done(); close(ch) }()
		return ch
	}
	go func() {
		select {
		case <-ctx.Done():
			close(ch)
			return
		case sig := <-o.Signals:
			logger.Info("signal received: stopping the graphs gracefully (send again to exit at once)", "signal", sig.String())
			close(ch)
		}
		first := time.Now()
		for sig := range o.Signals {
			if time.Since(first) > time.Second {
				fmt.Fprintf(o.Stderr, "second signal (%s): exiting without draining\n", sig)
				o.HardExit(exitcode.Runtime)
				return
			}
		}
	}()
	return ch
}

func watchInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return -1 // the Supervisor's "off"
	}
	return d
}

// responsive is the systemd watchdog's health check: the supervisor
// answers a List within a few seconds.
func responsive(sup *serve.Supervisor) error {
	done := make(chan struct{})
	go func() { sup.List(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("supervisor does not answer")
	}
}

// loadTLS loads --tls-cert/--tls-key before anything starts, so that a bad
// pair is a usage error, not a server that dies after saying it listens.
func loadTLS(f flags) (*tls.Config, error) {
	switch {
	case f.tlsCert == "" && f.tlsKey == "":
		return nil, nil
	case f.tlsCert == "" || f.tlsKey == "":
		return nil, usage("--tls-cert and --tls-key go together\n  fix: pass both (PEM files), or neither")
	}
	pair, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, usage("--tls-cert/--tls-key: %v\n  fix: pass a PEM certificate and its private key", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// checkListen refuses a non-loopback address without TLS and an explicit
// token file: the API would be reachable from the network in clear text,
// or with a token nobody chose to distribute.
func checkListen(addr string, tls, tokenFile bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usage("--listen %q: %v\n  fix: pass HOST:PORT, e.g. %s", addr, err, DefaultListen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return usage("--listen %q: port must be 0..65535", addr)
	}
	if isLoopback(host) {
		return nil
	}
	var missing []string
	if !tls {
		missing = append(missing, "--tls-cert F --tls-key F")
	}
	if !tokenFile {
		missing = append(missing, "--token-file F (a token you distribute to the clients)")
	}
	if len(missing) == 0 {
		return nil
	}
	where := host
	if where == "" {
		where = "every interface"
	}
	return usage("refusing to listen on %s (%s, not loopback) without TLS and a token file\n  fix: add %s, or listen on loopback (--listen 127.0.0.1:%s) behind an HTTPS reverse proxy",
		addr, where, strings.Join(missing, " and "), port)
}

func isLoopback(host string) bool { return netaddr.Loopback(host) }

// urlHost is the printable host:port of the bound address.
func urlHost(a *net.TCPAddr, listen string) string {
	host, _, _ := net.SplitHostPort(listen)
	if host == "" || (a.IP != nil && a.IP.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// checkGraphsDir fails early and clearly on a graphs directory that exists
// but cannot be listed (a missing one is created by the Supervisor).
func checkGraphsDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil && !fi.IsDir() {
		return exitcode.Errorf(exitcode.Runtime, "graphs directory %s is not a directory\n  fix: pass --graphs with a directory", dir)
	}
	if err == nil {
		_, err = os.ReadDir(dir)
	}
	if err != nil {
		return exitcode.Errorf(exitcode.Runtime, "graphs directory %s cannot be read: %v\n  fix: give this account read access (chmod u+rx) or pass another --graphs", dir, err)
	}
	return nil
}

// loadToken reads the token file; with generate, a missing one is created
// with a random 32-byte token (hex) and mode 0600.
func loadToken(path string, generate bool) (token string, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && generate {
		tok, err := randomHex(32)
		if err != nil {
			return "", false, err
		}
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", false, exitcode.Errorf(exitcode.Runtime, "creating the token file: %v", err)
		}
		_, werr := fh.WriteString(tok + "\n")
		if serr := fh.Sync(); werr == nil {
			werr = serr
		}
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(path)
			return "", false, exitcode.Errorf(exitcode.Runtime, "writing the token file %s: %v", path, werr)
		}
		return tok, true, nil
	}
	if err != nil {
		return "", false, exitcode.Errorf(exitcode.Usage, "token file: %v\n  fix: pass --token-file with a readable file holding the token", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	tok := strings.TrimSpace(line)
	if len(tok) < 16 {
		return "", false, exitcode.Errorf(exitcode.Usage, "token file %s holds no token of at least 16 characters\n  fix: write one, e.g. openssl rand -hex 32 > %s", path, path)
	}
	return tok, false, nil
}

// tokenModeWarning names a token file that group or others can read.
func tokenModeWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 || !modeBitsMeaningful() {
		return ""
	}
	return fmt.Sprintf("token file %s is readable by group or others (mode %04o): anyone who can read it controls every graph; fix: chmod 600 %s",
		path, fi.Mode().Perm(), path)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// pluginInfos is the `plugins --json` payload.
func pluginInfos(reg *plugin.Registry) any {
	entries := reg.Entries()
	infos := make([]plugin.Info, len(entries))
	for i, e := range entries {
		infos[i] = e.Info
	}
	return infos
}
