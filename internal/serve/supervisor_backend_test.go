package serve_test

import (
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/api"
)

// The HTTP API drives a *serve.Supervisor.
var _ api.Backend = (*serve.Supervisor)(nil)
