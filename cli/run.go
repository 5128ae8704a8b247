package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/internal/ops/sdnotify"
	"github.com/schnitzel-stream/schnitzel/internal/report"
	"github.com/schnitzel-stream/schnitzel/internal/runtime"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

type runOptions struct {
	graph        string
	part         string
	validateOnly bool
	reportJSON   bool
	reportFile   string
	maxEvents    int64
	metricsAddr  string
	strict       bool
	inboxMax     int
	inboxBytes   int64
	stopTimeout  time.Duration
	stall        time.Duration
	failDegraded bool
	noProgress   bool
	logw         *switchWriter // the logger's output, moved above the progress line while it shows
	logOptions

	// Legacy flags of the seed CLI, read only by v1 jobs.
	cameraID    string
	video       string
	sourceType  string
	cameraIndex int
	dryRun      bool
	outputJSONL string
	visualize   bool
	loop        bool
}

func (o *runOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.graph, "graph", "", "graph file to run (default: the built-in mock CCTV graph)")
	f.StringVar(&o.part, "part", "", "run only the connected part of the graph that holds this node id (a graph cut by transport: nats edges runs one part per process)")
	f.BoolVar(&o.validateOnly, "validate-only", false, "validate the graph and exit (same as 'schnitzel validate')")
	f.BoolVar(&o.reportJSON, "report-json", false, "print the run report as JSON, as the last line on stdout")
	f.StringVar(&o.reportFile, "report-file", "", "write the run report JSON to this file instead of stdout")
	f.Int64Var(&o.maxEvents, "max-events", 0, "stop sources after exactly N packets emitted in total (0 = no limit)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on HOST:PORT while running")
	f.BoolVar(&o.strict, "strict", false, "treat graph warnings (unknown config keys, ...) as errors")
	f.IntVar(&o.inboxMax, "inbox-max", 1024, "default inbox bound per node, in packets (a node's config.__runtime__.inbox_max overrides)")
	f.Int64Var(&o.inboxBytes, "inbox-max-bytes", runtime.DefaultInboxBytes, "default inbox bound per node in bytes of decoded frames, in graphs that carry them (config.__runtime__.inbox_max_bytes overrides)")
	o.stopTimeout = runtime.DefaultStopTimeout
	f.Var(secondsOrDuration{&o.stopTimeout}, "stop-timeout", "after a stop signal, how long in-flight packets may drain before node calls are cancelled and the rest is abandoned (counted in the report); seconds or a duration such as 500ms")
	f.BoolVar(&o.noProgress, "no-progress", false, "no live status line on a terminal (it shows only when stderr is a terminal, without --log-format json, --log-file, CI or a service manager)")
	f.BoolVar(&o.failDegraded, "fail-on-degraded", false, "exit 3 when the run ends degraded (packets dropped, failed, dead-lettered or abandoned), for scripts and CI")
	f.Var(secondsOrDuration{&o.stall}, "watchdog-stall", "systemd watchdog: stop pinging when a node has been inside one call this long (default: half of WatchdogSec, else 60s; env "+envStall+" in seconds)")
	o.logOptions.register(cmd)
	f.StringVar(&o.cameraID, "camera-id", "", "v1 legacy job: camera id")
	f.StringVar(&o.video, "video", "", "v1 legacy job: video file")
	f.StringVar(&o.sourceType, "source-type", "", "v1 legacy job: file, rtsp, webcam or plugin")
	f.IntVar(&o.cameraIndex, "camera-index", -1, "v1 legacy job: webcam index")
	f.BoolVar(&o.dryRun, "dry-run", false, "v1 legacy job: do not send events to the backend")
	f.StringVar(&o.outputJSONL, "output-jsonl", "", "v1 legacy job: also write events to this JSONL file")
	f.BoolVar(&o.visualize, "visualize", false, "v1 legacy job: accepted for compatibility (no window is opened)")
	f.BoolVar(&o.loop, "loop", false, "v1 legacy job: loop the video file")
}

func (a *App) runGraph(ctx context.Context, cmd *cobra.Command, o *runOptions) error {
	if cmd.Flags().Changed("source-type") {
		switch o.sourceType {
		case "file", "rtsp", "webcam", "plugin":
		default:
			return exitcode.Errorf(exitcode.Usage, "--source-type must be file, rtsp, webcam or plugin, got %q", o.sourceType)
		}
	}
	if o.maxEvents < 0 {
		return exitcode.Errorf(exitcode.Usage, "--max-events must be >= 0, got %d", o.maxEvents)
	}
	if o.inboxMax <= 0 {
		return exitcode.Errorf(exitcode.Usage, "--inbox-max must be > 0, got %d", o.inboxMax)
	}
	if o.inboxBytes <= 0 {
		return exitcode.Errorf(exitcode.Usage, "--inbox-max-bytes must be > 0, got %d", o.inboxBytes)
	}
	if o.stopTimeout < minStopTimeout || o.stopTimeout > maxStopTimeout {
		return exitcode.Errorf(exitcode.Usage, "--stop-timeout must be between %s and %s, got %s", minStopTimeout, maxStopTimeout, o.stopTimeout)
	}
	stall, err := a.watchdogStall(o.stall)
	if err != nil {
		return err
	}
	o.stall = stall
	o.logw = &switchWriter{w: a.Stderr}
	logger, closeLog, err := o.logger(o.logw)
	if err != nil {
		return err
	}
	defer closeLog()
	plan, diags, err := a.loadPart(o.graph, o.strict, o.part)
	printDiags(a.Stderr, diags)
	if err != nil {
		if len(diags.Errors()) > 0 {
			return exitcode.Errorf(exitcode.Usage, "graph is invalid: %d error(s)", len(diags.Errors()))
		}
		if o.strict && len(diags) > 0 {
			return exitcode.Errorf(exitcode.Usage, "graph has %d warning(s) and --strict is set", len(diags))
		}
		return err
	}
	if o.validateOnly {
		return nil
	}
	graphName := o.graph
	if graphName == "" || graphName == "-" { // "-": the loader named it <stdin>
		graphName = plan.Graph.File
	}
	if plan.Graph.Version == 1 {
		return a.runJob(ctx, cmd, o, plan, logger)
	}
	return a.runV2(ctx, o, plan, graphName, logger)
}

func (a *App) runV2(parent context.Context, o *runOptions, plan *graph.Plan, graphName string, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stopMetrics, stopProgress := func() {}, func() {}
	defer func() { stopMetrics() }()
	started := func(x *engine.Executor) error {
		if x.LargePackets() && a.SetGCPercent != nil {
			a.SetGCPercent(200)
		}
		var err error
		if stopMetrics, err = a.serveMetrics(o.metricsAddr, x, o.stall, logger); err != nil {
			return err
		}
		go a.watchSignals(ctx, x.Stop, logger)
		// Under systemd (Type=notify): ready once the nodes are built and
		// the metrics port is bound; watchdog pings only while every node
		// is making progress (runtime.Liveness), so a node stuck in a call
		// gets the process restarted.
		_, _ = sdnotify.Notify(sdnotify.Ready)
		go sdnotify.RunWatchdog(ctx, watchdogHealth(x, o.stall, logger))
		logger.Debug("graph started", "graph", graphName, "nodes", len(plan.Nodes))
		if a.progressWanted(o) {
			stopProgress = a.startProgress(x, o.logw)
		}
		return nil
	}
	rep, err := engine.Execute(ctx, plan, graphName, engine.Options{MaxEvents: o.maxEvents, InboxMax: o.inboxMax,
		InboxBytes: o.inboxBytes, Logger: logger, Stdout: a.Stdout, Stdin: a.stdin(), StopTimeout: o.stopTimeout, Started: started})
	if err != nil {
		var ee *exitcode.Error
		if errors.As(err, &ee) { // --metrics-addr
			return err
		}
		return exitcode.New(exitcode.Usage, err)
	}
	stopProgress()
	_, _ = sdnotify.Notify(sdnotify.Stopping)
	if err := a.emitReport(o, rep, len(plan.Nodes), len(plan.Graph.Edges), stdoutData(plan)); err != nil {
		return err
	}
	if rep.Error != nil {
		return exitcode.Errorf(exitcode.Runtime, "node %q failed (%s): %s", rep.Error.Node, rep.Error.Phase, rep.Error.Message)
	}
	if rep.Abandoned > 0 || len(rep.Stuck) > 0 {
		logger.Warn("stop timeout expired: packets still in flight were abandoned (not nacked); see abandoned_total in the report",
			"abandoned", rep.Abandoned, "stuck_nodes", rep.Stuck, "stop_timeout", o.stopTimeout.String())
	} else if rep.Status == report.StatusDegraded {
		logger.Warn("run degraded: packets were dropped or failed; see the report metrics")
	}
	if o.failDegraded && rep.Status == report.StatusDegraded {
		return exitcode.Errorf(exitcode.Degraded, "run degraded (--fail-on-degraded): packets were dropped, failed, dead-lettered or abandoned; see the report metrics")
	}
	return nil
}

// watchSignals turns the first SIGINT/SIGTERM/SIGHUP into a graceful stop
// and a later one into an immediate exit. A signal within secondSignalAfter
// of the first is the same stop: GNU timeout -s INT, a terminal's Ctrl-C
// and process-group kills deliver one signal twice at once.
func (a *App) watchSignals(ctx context.Context, stop func(), logger *slog.Logger) {
	if a.Signals == nil {
		return
	}
	var first time.Time
	select {
	case <-ctx.Done():
		return
	case sig := <-a.Signals:
		first = signalClock()
		logger.Info("signal received: stopping gracefully (send again to exit at once)", "signal", sig.String())
		stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-a.Signals:
			if signalClock().Sub(first) <= secondSignalAfter {
				logger.Debug("signal within 1s of the first: same stop", "signal", sig.String())
				continue
			}
			fmt.Fprintf(a.Stderr, "second signal (%s): exiting without draining\n", sig)
			a.HardExit(exitcode.Runtime)
			return
		}
	}
}

// signalClock is time.Now; tests move it.
var signalClock = time.Now

const (
	secondSignalAfter = time.Second
	minStopTimeout    = 10 * time.Millisecond
	maxStopTimeout    = time.Hour
	defaultStall      = 60 * time.Second
	maxStall          = 24 * time.Hour
	envStall          = "SCHNITZEL_WATCHDOG_STALL_SEC"
)

// watchdogStall is how long a node may stay inside one call before the
// watchdog stops pinging: --watchdog-stall, else $SCHNITZEL_WATCHDOG_STALL_SEC,
// else half of systemd's WatchdogSec (so the loss is seen within one
// WatchdogSec), else 60 s.
func (a *App) watchdogStall(flag time.Duration) (time.Duration, error) {
	d := flag
	if d == 0 {
		if v := a.Getenv(envStall); v != "" {
			sec, err := strconv.ParseFloat(v, 64)
			if err != nil || !(sec > 0) || sec > maxStall.Seconds() {
				return 0, exitcode.Errorf(exitcode.Usage, "%s must be a number of seconds > 0 and <= %d, got %q", envStall, int(maxStall.Seconds()), v)
			}
			d = time.Duration(sec * float64(time.Second))
		} else if wd, ok := sdnotify.WatchdogInterval(); ok {
			d = wd / 2
		} else {
			d = defaultStall
		}
	}
	if d <= 0 || d > maxStall {
		return 0, exitcode.Errorf(exitcode.Usage, "--watchdog-stall must be > 0 and <= %s, got %s", maxStall, d)
	}
	return d, nil
}

// watchdogHealth is the watchdog's health check: the runtime's liveness,
// logged once when it is lost (naming the node and how long it has been in
// its call) and once when it comes back.
func watchdogHealth(x *runtime.Executor, stall time.Duration, logger *slog.Logger) func() error {
	var lost atomic.Bool
	return func() error {
		err := x.Liveness(stall)
		var se *runtime.StallError
		switch {
		case err != nil && lost.CompareAndSwap(false, true):
			attrs := []any{"err", err, "stall", stall.String()}
			if errors.As(err, &se) {
				attrs = append(attrs, "stuck_node", se.NodeID, "in_call_for", se.InCall.Round(time.Millisecond).String())
			}
			logger.Error("watchdog: liveness lost, no more pings (systemd restarts the service after WatchdogSec)", attrs...)
		case err == nil && lost.CompareAndSwap(true, false):
			logger.Info("watchdog: liveness back, pinging again")
		}
		return err
	}
}

// serveMetrics serves /metrics, and the probes beside it: /healthz is 200
// while every node makes progress (runtime.Liveness, the watchdog's rule)
// and 503 naming the stuck node otherwise; /readyz is 200 while the graph
// runs and 503 once a stop has begun, so a load balancer or orchestrator
// stops sending before the drain.
func (a *App) serveMetrics(addr string, x *runtime.Executor, stall time.Duration, logger *slog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Usage, "--metrics-addr %s: %v", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(report.NewCollector(x.Snapshot), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := x.Liveness(stall); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if x.Stopping() {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "err", err)
		}
	}()
	logger.Info("serving Prometheus metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// stdoutData: a node of the plan writes data on stdout (Spec.StdoutData).
func stdoutData(plan *graph.Plan) bool {
	for _, pn := range plan.Nodes {
		if pn.Entry != nil && pn.Entry.StdoutData {
			return true
		}
	}
	return false
}

// emitReport prints the run report or summary; with dataOnStdout the
// summary line goes to stderr, keeping stdout to the graph's data.
func (a *App) emitReport(o *runOptions, rep *report.Report, nodes, edges int, dataOnStdout bool) error {
	switch {
	case o.reportFile != "":
		data := append(rep.JSON(), '\n')
		if dir := filepath.Dir(o.reportFile); dir != "" {
			_ = os.MkdirAll(dir, 0o755)
		}
		if err := os.WriteFile(o.reportFile, data, 0o644); err != nil {
			return exitcode.Errorf(exitcode.Runtime, "--report-file: %v", err)
		}
	case o.reportJSON:
		fmt.Fprintf(a.Stdout, "%s\n", rep.JSON())
	default:
		if rep.Status != report.StatusError {
			w := a.Stdout
			if dataOnStdout {
				w = a.Stderr
			}
			fmt.Fprintln(w, rep.Summary(nodes, edges))
		}
	}
	return nil
}

func (a *App) runJob(parent context.Context, cmd *cobra.Command, o *runOptions, plan *graph.Plan, logger *slog.Logger) error {
	if a.Getenv("SCHNITZEL_STREAM_SILENCE_LEGACY_WARNING") == "" {
		fmt.Fprintln(a.Stderr, "WARNING: running a v1 job graph (legacy runtime). Set SCHNITZEL_STREAM_SILENCE_LEGACY_WARNING=1 to silence this warning.")
	}
	args := plugin.JobArgs{
		CameraID: o.cameraID, Video: o.video, SourceType: o.sourceType, DryRun: o.dryRun,
		OutputJSONL: o.outputJSONL, Visualize: o.visualize, Loop: o.loop, MaxEvents: int(o.maxEvents),
	}
	if cmd.Flags().Changed("camera-index") {
		idx := o.cameraIndex
		args.CameraIndex = &idx
	}
	metrics := packet.NewMap(8)
	env := plugin.JobEnv{
		Config: plan.Graph.Config, Args: args, Getenv: a.Getenv, Stdout: a.Stdout, Stderr: a.Stderr,
		Logger: logger.With("job", plan.Job.Name), GraphDir: filepath.Dir(plan.Graph.File),
		Metrics: func(name string, v int64) { metrics.Set(name, v) },
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	go a.watchSignals(ctx, cancel, logger)
	_, _ = sdnotify.Notify(sdnotify.Ready)
	start := time.Now()
	job := plan.Job.New()
	err := job.Run(ctx, env)
	rep := &report.Report{TS: packet.Now(), Status: report.StatusOK, Engine: "job", GraphVersion: 1, Graph: plan.Graph.File, Metrics: metrics, Duration: time.Since(start)}
	if err != nil && !errors.Is(err, context.Canceled) {
		rep.Status = report.StatusError
		rep.Error = &report.ErrorInfo{Node: "job", Plugin: plan.Job.Name, Phase: "run", Message: err.Error()}
	}
	if o.reportJSON || o.reportFile != "" {
		if e := a.emitReport(o, rep, 0, 0, false); e != nil {
			return e
		}
	}
	if rep.Error != nil {
		return exitcode.Errorf(exitcode.Runtime, "job %s: %v", plan.Job.Name, err)
	}
	return nil
}

// stdin is what StdinSource reads: App.Stdin, or an empty input when the
// App has none (never the process's own stdin behind its back).
func (a *App) stdin() io.Reader {
	if a.Stdin == nil {
		return eofReader{}
	}
	return a.Stdin
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
