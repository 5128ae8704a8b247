package clientcmd

import (
	"bufio"
	"errors"
	"fmt"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/serve/client"
)

func (o *Options) tapCommand() *cobra.Command {
	var cn conn
	var port string
	var limit int
	cmd := &cobra.Command{
		Use:   "tap GRAPH NODE [--port P] [--limit N]",
		Short: "Print the packets a node of a served graph emits, as they flow",
		Long: `Print each packet NODE emits (a sink: each packet it consumes) as one JSON line
on stdout, live, from a running "schnitzel serve". The tap never slows the
graph: when this reader falls behind, packets are skipped and the count is
reported on stderr. Ends after --limit packets, when the graph stops or
reloads, or on Ctrl-C.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return exitcode.Errorf(exitcode.Usage, "--limit must be 0 (no limit) or more, got %d", limit)
			}
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			ctx, cancel := o.signalContext(cmd.Context())
			defer cancel()
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			stderr := cmd.ErrOrStderr()
			var reported int64
			reason, err := c.Tap(ctx, args[0], args[1], port, limit, client.TapHandler{
				Packet: func(line []byte) error {
					if _, err := out.Write(line); err != nil {
						return err
					}
					if err := out.WriteByte('\n'); err != nil {
						return err
					}
					// A line as soon as it arrives: the reader is a person or a pipe.
					return out.Flush()
				},
				Dropped: func(total int64) {
					if total > reported {
						fmt.Fprintf(stderr, "tap: %d packets skipped so far (this reader is slower than the graph)\n", total)
						reported = total
					}
				},
			})
			_ = out.Flush()
			if err != nil {
				if errors.Is(err, ctx.Err()) && ctx.Err() != nil && cmd.Context().Err() == nil {
					return nil // Ctrl-C
				}
				if errors.Is(err, syscall.EPIPE) {
					return nil // the reader went away: `schnitzel tap g n | head`
				}
				return failure(err)
			}
			if reason != "limit" {
				fmt.Fprintf(stderr, "tap ended: %s\n", reason)
			}
			return nil
		},
	}
	o.register(cmd, &cn)
	cmd.Flags().StringVar(&port, "port", "", "output port of NODE (default: its default port)")
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after N packets (0: until the graph stops or Ctrl-C)")
	return cmd
}
