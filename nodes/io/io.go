// Package ionodes holds the delivery nodes: HttpJsonSink (POST with retry,
// backoff with jitter and an idempotency header) and the file sinks
// JsonlSink and JsonFileSink. The directory is nodes/io; the package is
// named ionodes so that importing it does not shadow the standard io.
package ionodes

import "github.com/schnitzel-stream/schnitzel/plugin"

const (
	modHTTP = "schnitzel_stream.nodes.http:"
	modFile = "schnitzel_stream.nodes.file_sink:"
)

// Register adds HttpJsonSink, JsonlSink and JsonFileSink to r.
func Register(r *plugin.Registry) {
	registerHTTP(r)
	registerJSONL(r)
	registerJSONFile(r)
}
