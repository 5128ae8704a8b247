package plugin

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// Job is a v1 job graph's target: a whole pipeline behind one plugin string
// (upstream's LegacyAIPipelineJob). A v1 graph is `job: module:Name` plus a
// free-form `config` mapping.
type Job interface {
	Run(ctx context.Context, env JobEnv) error
}

// JobArgs are the seed CLI's legacy flags, which only v1 jobs read. A zero
// value means "not given".
type JobArgs struct {
	CameraID    string
	Video       string
	SourceType  string // file, rtsp, webcam, plugin
	CameraIndex *int
	DryRun      bool
	OutputJSONL string
	Visualize   bool
	Loop        bool
	MaxEvents   int // 0 = unlimited
}

// JobEnv is what a job gets when it runs.
type JobEnv struct {
	Config   *packet.Map // the graph's `config` mapping (never nil)
	Args     JobArgs
	Getenv   func(string) string
	Stdout   io.Writer
	Stderr   io.Writer
	Logger   *slog.Logger
	GraphDir string
	// Metrics receives the job's counters for the run report; may be nil.
	Metrics func(name string, value int64)
}

// JobSpec declares a v1 job.
type JobSpec struct {
	Name        string
	Aliases     []string
	Summary     string
	Description string
	New         func() Job
}

// RegisterJob adds a v1 job. It panics on a duplicate or malformed name.
func RegisterJob(r *Registry, s JobSpec) {
	for _, n := range append([]string{s.Name}, s.Aliases...) {
		if !pluginName.MatchString(n) {
			panic(fmt.Sprintf("plugin: malformed job name %q", n))
		}
		if r.jobs == nil {
			r.jobs = map[string]*JobSpec{}
		}
		if _, dup := r.jobs[n]; dup {
			panic(fmt.Sprintf("plugin: job %s registered twice", n))
		}
		r.jobs[n] = &s
	}
}

// LookupJob finds a v1 job by name or alias.
func (r *Registry) LookupJob(name string) (*JobSpec, bool) {
	j, ok := r.jobs[name]
	return j, ok
}
