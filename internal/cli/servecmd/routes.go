package servecmd

import (
	"log/slog"

	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
	"github.com/schnitzel-stream/schnitzel/internal/serve/audit"
)

// routeDeps are what the routes beyond the core API need.
type routeDeps struct {
	sup                 *serve.Supervisor
	srv                 *api.Server
	audit               *audit.Log
	graphsDir, stateDir string
	tokenRequired       bool
	logger              *slog.Logger
}

// addRoutes registers upstream's routes and the fleet's behind the API's
// middleware.
func addRoutes(srv *api.Server, d routeDeps) error {
	return nil
}
