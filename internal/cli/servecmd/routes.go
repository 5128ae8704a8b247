package servecmd

import (
	"io/fs"
	"strings"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
	"github.com/schnitzel-stream/schnitzel/internal/serve/compat"
	"github.com/schnitzel-stream/schnitzel/internal/serve/fleet"
)

// routeDeps are what the routes beyond the core API need.
type routeDeps struct {
	sup                 *serve.Supervisor
	engine              engine.Options // the Supervisor's: registry, limits, policy
	lookupEnv           func(string) (string, bool)
	presets             fs.FS
	audit               *audit.Log
	graphsDir, stateDir string
}

// addRoutes registers upstream's control API routes (in upstream's
// envelope) and the fleet's behind the API's middleware.
func addRoutes(srv *api.Server, d routeDeps) {
	eng := d.engine
	eng.LookupEnv = d.lookupEnv
	m := fleet.New(d.sup, fleet.Options{Engine: eng})
	srv.Handle(compat.Routes(srv, d.sup, m, compat.Config{
		GraphsDir: d.graphsDir, StateDir: d.stateDir,
		Engine: d.engine, LookupEnv: d.lookupEnv,
		Presets: d.presets, Audit: d.audit,
	})...)
}

// filteredLookup is the Supervisor's rule for the environment a graph may
// read: SS_* names and --allow-env names, nothing else (a graph or preset
// sent over the API cannot read the server's secrets, D-WIZ-1).
func filteredLookup(lookup func(string) (string, bool), allow []string) func(string) (string, bool) {
	allowed := map[string]bool{}
	for _, n := range allow {
		allowed[n] = true
	}
	return func(name string) (string, bool) {
		if strings.HasPrefix(name, "SS_") || allowed[name] {
			return lookup(name)
		}
		return "", false
	}
}
