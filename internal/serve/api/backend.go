// Package api is schnitzel serve's HTTP API: one route table, secure by
// default (bearer token, Host check, JSON/YAML-only mutations, closed
// CORS, size limits), every mutation and refusal audited.
package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/schnitzel-stream/schnitzel/engine"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
)

// Backend is what the API drives: *serve.Supervisor.
type Backend interface {
	List() []serve.GraphStatus
	Get(name string) (*serve.GraphDetail, error)
	// Apply validates yaml (an *engine.InvalidError: 422, nothing changed),
	// writes it atomically to the graphs dir and starts or hot-reloads it.
	Apply(name string, yaml []byte, o serve.ApplyOptions) (serve.ApplyResult, error)
	Delete(name, actor string) error
	Start(name, actor string) error
	Stop(name, actor string) error
	Restart(name, actor string) error
	// Report is the live run report while running, else the last one.
	Report(name string) (*engine.Report, error)
	// Validate loads yaml under the serve limits and env rules; diags has
	// every diagnostic, err is an *engine.InvalidError when it cannot run.
	Validate(name string, yaml []byte) (engine.Diags, error)
	Tap(name, node, port string) (serve.TapStream, error)
	// Collector exports every graph's node metrics with a "graph" label.
	Collector() prometheus.Collector
	// Queues lists the nodes of every graph that use a durable SQLite
	// queue file, with the file's absolute path: the only files the queue
	// routes open.
	Queues() []serve.QueueRef
}
