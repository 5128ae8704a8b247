// Command custom-binary is schnitzel with one extra node: every built-in
// node and job (nodes/all) plus example.nodes:Uppercase. It is what a
// custom binary in a module of its own looks like (docs/writing-nodes.md).
package main

import (
	"os"

	"github.com/schnitzel-stream/schnitzel/cli"
	"github.com/schnitzel-stream/schnitzel/examples/custom-binary/uppercase"
	"github.com/schnitzel-stream/schnitzel/nodes/all"
)

func main() {
	reg := all.Registry()
	uppercase.Register(reg)
	// The allowlist (ALLOWED_PLUGIN_PREFIXES) covers compiled-in nodes
	// too: allow this binary's own prefix by default.
	os.Exit(cli.Main(os.Args[1:], reg, cli.WithAllowedPrefixes("example.")))
}
