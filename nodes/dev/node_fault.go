package dev

import (
	"context"
	"errors"
	"fmt"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// FaultConfig is FaultNode's config.
type FaultConfig struct {
	After int64  `yaml:"after" doc:"Packets passed through before the fault; the next one triggers it (0: the first packet)."`
	Mode  string `yaml:"mode" enum:"panic,error" doc:"panic: panic inside Process; error: return an error, which fails the node and ends the run with status error."`
}

// Validate rejects a negative count and an unknown mode.
func (c *FaultConfig) Validate() error {
	var errs []error
	if c.After < 0 {
		errs = append(errs, plugin.Errorf("after", "must be >= 0, got %d", c.After))
	}
	if c.Mode != "panic" && c.Mode != "error" {
		errs = append(errs, plugin.Errorf("mode", "must be panic or error, got %q", c.Mode))
	}
	return errors.Join(errs...)
}

func registerFault(r *plugin.Registry) {
	plugin.Register(r, plugin.Spec[FaultConfig]{
		Name:    mod + "FaultNode",
		Role:    plugin.RoleNode,
		In:      []string{"*"},
		Out:     []string{"*"},
		Summary: "TEST/CHAOS NODE: pass packets through, then fail on purpose (panic or error) after `after` packets.",
		Description: "For supervision and chaos tests only (schnitzel serve's restart with backoff, alerting, " +
			"dashboards): never put it in a production graph. It re-emits each packet unchanged; the packet after the " +
			"first `after` ones makes Process panic (mode: panic; the runtime turns it into a node failure) or return " +
			"an error (mode: error). Either way the node fails and the run ends with status error. The count restarts " +
			"with each run.",
		Defaults: FaultConfig{After: 10, Mode: "error"},
		NewProcessor: func(c FaultConfig, env plugin.Env) (plugin.Processor, error) {
			return &fault{cfg: c, node: env.NodeID}, nil
		},
	})
}

type fault struct {
	cfg  FaultConfig
	node string
	seen int64 // only the node's goroutine counts
}

func (f *fault) Process(_ context.Context, p *packet.Packet, out plugin.Emitter) error {
	if f.seen >= f.cfg.After {
		if f.cfg.Mode == "panic" {
			panic(fmt.Sprintf("FaultNode %q: deliberate panic after %d packets", f.node, f.seen))
		}
		return fmt.Errorf("FaultNode %q: deliberate error after %d packets", f.node, f.seen)
	}
	f.seen++
	return out.Emit(p)
}
