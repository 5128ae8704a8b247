// Package execnodes runs nodes as child processes in any language: a
// plugin speaks JSON lines over its stdin and stdout (docs/plugin-protocol.md)
// and its stderr is its log. ProcessNode, ProcessSink and ProcessSource
// take a command; an unregistered `module:Class` plugin string that the
// allowlist admits runs upstream's Python node class unchanged through an
// embedded shim (pyshim), resolved by the registry's fallback.
package execnodes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/shlex"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

const mod = "schnitzel_stream.nodes.exec:"

// Plugin strings.
const (
	NodeName   = mod + "ProcessNode"
	SinkName   = mod + "ProcessSink"
	SourceName = mod + "ProcessSource"
)

// ProcessConfig is the process settings, shared by every node here (and
// the Python shim's defaults).
type ProcessConfig struct {
	TimeoutSec      plugin.Seconds `yaml:"timeout_sec" doc:"Per packet: the answer must arrive within this; otherwise the plugin is killed and restarted and the packet failed. Not used by ProcessSource (a source may idle)."`
	StartTimeoutSec plugin.Seconds `yaml:"start_timeout_sec" doc:"From launch to the hello frame, and again from hello to ready (imports, model loading)."`
	MaxRestarts     int            `yaml:"max_restarts" doc:"Restarts in a row without a good answer before the run ends with an error; -1 = no limit." advanced:"true"`
	BackoffSec      plugin.Seconds `yaml:"backoff_sec" doc:"Delay before the first restart; doubles per restart in a row (with jitter) up to backoff_max_sec." advanced:"true"`
	BackoffMaxSec   plugin.Seconds `yaml:"backoff_max_sec" doc:"Cap of the restart delay." advanced:"true"`
	OnError         string         `yaml:"on_error" enum:"drop,error" doc:"A packet the plugin failed (its error, a crash, a hang, a bad answer): drop it (counted, the run ends degraded) or end the run with the error."`
	MaxFrameBytes   int            `yaml:"max_frame_bytes" doc:"Largest frame (one JSON line) either way; a bigger line from the plugin fails the packet and restarts the plugin." advanced:"true"`
}

// Config is a command plugin's config.
type Config struct {
	Command any               `yaml:"command" required:"true" doc:"The plugin's argv: a list of strings, or one string split like a shell (quotes, no expansion). The program is looked up in PATH; a relative path resolves against dir." example:"[python3, plugins/upper.py]|./plugin --fast"`
	Env     map[string]string `yaml:"env" secret:"true" doc:"Extra environment variables for the plugin, on top of ours (values are never logged)."`
	Dir     string            `yaml:"dir" doc:"The plugin's working directory; empty = ours."`
	Config  *packet.Map       `yaml:"config" doc:"Passed to the plugin in the config frame (its own settings)."`

	ProcessConfig `yaml:",inline"`
}

func defaultProcess() ProcessConfig {
	return ProcessConfig{
		TimeoutSec: 30, StartTimeoutSec: 30, MaxRestarts: 5,
		BackoffSec: 0.1, BackoffMaxSec: 5, OnError: "drop", MaxFrameBytes: DefaultMaxFrameBytes,
	}
}

// Validate checks the process settings.
func (c *ProcessConfig) Validate() error {
	var errs []error
	if c.TimeoutSec <= 0 {
		errs = append(errs, plugin.Errorf("timeout_sec", "timeout_sec must be > 0 (got %v)", float64(c.TimeoutSec)))
	}
	if c.StartTimeoutSec <= 0 {
		errs = append(errs, plugin.Errorf("start_timeout_sec", "start_timeout_sec must be > 0 (got %v)", float64(c.StartTimeoutSec)))
	}
	if c.MaxRestarts < -1 {
		errs = append(errs, plugin.Errorf("max_restarts", "max_restarts must be >= -1 (got %d)", c.MaxRestarts))
	}
	if c.BackoffSec < 0 || c.BackoffMaxSec < c.BackoffSec {
		errs = append(errs, plugin.Errorf("backoff_sec", "need 0 <= backoff_sec <= backoff_max_sec (got %v, %v)", float64(c.BackoffSec), float64(c.BackoffMaxSec)))
	}
	if c.MaxFrameBytes < 1024 {
		errs = append(errs, plugin.Errorf("max_frame_bytes", "max_frame_bytes must be >= 1024 (got %d)", c.MaxFrameBytes))
	}
	return errors.Join(errs...)
}

// Validate checks the command on top of the process settings.
func (c *Config) Validate() error {
	errs := []error{c.ProcessConfig.Validate()}
	if _, err := argv(c.Command); err != nil {
		errs = append(errs, err)
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, plugin.Errorf("env", "env: %q is not a variable name", k))
		}
	}
	return errors.Join(errs...)
}

// argv reads the command key: a list of strings or a shell-like string.
func argv(raw any) ([]string, error) {
	var out []string
	switch x := raw.(type) {
	case string:
		words, err := shlex.Split(x)
		if err != nil {
			return nil, plugin.Errorf("command", "command: %v", err)
		}
		out = words
	case []any:
		for i, w := range x {
			s, ok := w.(string)
			if !ok {
				return nil, plugin.Errorf(fmt.Sprintf("command[%d]", i), "command[%d] must be a string, got %s", i, packet.PyStr(w))
			}
			out = append(out, s)
		}
	case nil:
	default:
		return nil, plugin.Errorf("command", "command must be a list of strings or a string")
	}
	if len(out) == 0 || out[0] == "" {
		return nil, plugin.Errorf("command", "command must not be empty")
	}
	return out, nil
}

func (c ProcessConfig) settings(args, env []string, dir string, cfg *packet.Map) settings {
	return settings{
		argv: args, env: env, dir: dir,
		timeout: c.TimeoutSec.Duration(), startTimeout: c.StartTimeoutSec.Duration(),
		maxRestarts: c.MaxRestarts, backoff: c.BackoffSec.Duration(), backoffMax: c.BackoffMaxSec.Duration(),
		dropOnError: c.OnError != "error", maxFrame: c.MaxFrameBytes, config: cfg,
	}
}

func (c Config) resolve() settings {
	args, _ := argv(c.Command) // Validate checked it; os/exec takes ./x against dir
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+c.Env[k])
	}
	return c.ProcessConfig.settings(args, env, c.Dir, c.Config)
}

const protocolDoc = `The plugin is a child process speaking JSON lines on stdin/stdout
(docs/plugin-protocol.md): it says hello, gets its config, answers ready,
then handles packets one at a time. Its stderr is forwarded to the log,
rate-limited. Payloads must be JSON: frames and bytes cross by reference
(a blob) only. A crash, a hang (timeout_sec) or a line that breaks the
protocol fails the packet and restarts the plugin with backoff, up to
max_restarts in a row; closing kills the plugin's whole process group.`

// Register adds ProcessNode, ProcessSink, ProcessSource and the Python
// class fallback to r.
func Register(r *plugin.Registry) {
	defaults := Config{ProcessConfig: defaultProcess()}
	for _, s := range []struct {
		name    string
		role    plugin.Role
		summary string
	}{
		{NodeName, plugin.RoleNode, "Run each packet through a child process in any language (JSON lines protocol)."},
		{SinkName, plugin.RoleSink, "Hand each packet to a child process in any language (JSON lines protocol); what it answers is forwarded."},
	} {
		plugin.Register(r, plugin.Spec[Config]{
			Name: s.name, Role: s.role, Summary: s.summary, Description: protocolDoc,
			InProfile: plugin.ProfileJSON, Stability: plugin.Experimental,
			Metrics: metricSpecs, Defaults: defaults,
			NewProcessor: func(c Config, env plugin.Env) (plugin.Processor, error) {
				return &node{r: newRunner(c.resolve(), env)}, nil
			},
		})
	}
	plugin.Register(r, plugin.Spec[Config]{
		Name: SourceName, Role: plugin.RoleSource,
		Summary:     "Emit the packets a child process in any language writes (JSON lines protocol).",
		Description: protocolDoc + "\n\nA source plugin sends emit frames and then end. A restart after a crash runs it again from its start.",
		OutProfile:  plugin.ProfileJSON, Stability: plugin.Experimental,
		Metrics: metricSpecs, Defaults: defaults,
		NewSource: func(c Config, env plugin.Env) (plugin.Source, error) {
			return &source{r: newRunner(c.resolve(), env)}, nil
		},
	})
	r.SetFallback(pythonFallback)
}

// node is ProcessNode and ProcessSink.
type node struct{ r *runner }

func (n *node) Start(ctx context.Context) error {
	c, err := n.r.start(ctx)
	if err != nil {
		return err
	}
	n.r.mu.Lock()
	n.r.cur = c
	n.r.mu.Unlock()
	return nil
}

func (n *node) Process(ctx context.Context, p *packet.Packet, out plugin.Emitter) error {
	res, err := n.r.process(ctx, p)
	if err != nil {
		return err
	}
	for _, q := range res {
		if err := out.Emit(q); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) Close(ctx context.Context) error { n.r.close(ctx); return nil }

func (n *node) Metrics() []plugin.Metric { return n.r.Metrics() }
