// Package configs embeds the example graphs, so that the binary can run
// its default graph with no files on disk.
package configs

import "embed"

// Graphs holds configs/graphs/*.yaml.
//
//go:embed graphs/*.yaml
var Graphs embed.FS

// DefaultGraph is the graph `schnitzel` runs with no --graph (the seed's
// default job).
const DefaultGraph = "graphs/dev_cctv_e2e_mock_v2.yaml"

// FallbackGraph is run by default when the build has no vision pack.
const FallbackGraph = "graphs/dev_inproc_demo_v2.yaml"
