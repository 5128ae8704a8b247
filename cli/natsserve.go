//go:build !nonatsserver

package cli

import (
	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/natscmd"
)

// `schnitzel nats serve` embeds nats-server (about 13 MB of binary): an
// edge build that never runs a broker leaves it out with -tags nonatsserver.
func init() {
	extraCommands = append(extraCommands, func(*App) *cobra.Command { return natscmd.Command() })
}
