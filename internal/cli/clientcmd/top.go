package clientcmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/client"
)

func (o *Options) topCommand() *cobra.Command {
	var cn conn
	var once bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "top [--once] [--interval D]",
		Short: "A live table of the served graphs and their nodes: rates, inboxes, drops, errors",
		Long: `Show every graph of a running "schnitzel serve" and each running graph's nodes:
packets in/out per second, inbox depth and bound, drops, errors, restarts and
the last error, refreshed every --interval (like vector top). When stdout is
not a terminal, or with --once, it prints one snapshot and exits. Ctrl-C ends it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return exitcode.Errorf(exitcode.Usage, "--interval must be at least 100ms, got %s", interval)
			}
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			live := !once && o.IsTerminal(w)
			ctx, cancel := o.signalContext(cmd.Context())
			defer cancel()
			if live {
				// The alternate screen, cursor hidden: the shell's screen
				// comes back as it was on exit.
				_, _ = io.WriteString(w, "\x1b[?1049h\x1b[?25l")
				defer func() { _, _ = io.WriteString(w, "\x1b[?25h\x1b[?1049l") }()
			}
			for {
				var buf bytes.Buffer
				if err := snapshot(ctx, c, &buf, time.Now()); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					if !live {
						return failure(err)
					}
					// A live view survives a restarting server: show why it is empty.
					buf.Reset()
					fmt.Fprintf(&buf, "schnitzel top  %s  %s\n\n%v\n", c.Server(), time.Now().Format("15:04:05"), err)
				}
				if live {
					// Home and clear, then the frame in one write: no flicker.
					_, _ = io.WriteString(w, "\x1b[H\x1b[2J")
				}
				if _, err := w.Write(buf.Bytes()); err != nil {
					return err
				}
				if !live {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	o.register(cmd, &cn)
	cmd.Flags().BoolVar(&once, "once", false, "print one snapshot and exit")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval")
	return cmd
}

// snapshot renders one frame: the graphs, and under each running one its
// nodes (one detail request per graph, in parallel).
func snapshot(ctx context.Context, c *client.Client, w io.Writer, now time.Time) error {
	gs, err := c.List(ctx)
	if err != nil {
		return err
	}
	details := make([]*client.Detail, len(gs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, g := range gs {
		if g.State != serve.StateRunning && g.State != serve.StateBackoff && g.State != serve.StateFailed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if d, err := c.Get(ctx, g.Name); err == nil {
				details[i] = d
			}
		}()
	}
	wg.Wait()
	running := 0
	for _, g := range gs {
		if g.State == serve.StateRunning {
			running++
		}
	}
	fmt.Fprintf(w, "schnitzel top  %s  %s  graphs: %d (%d running)\n\n", c.Server(), now.Format("15:04:05"), len(gs), running)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GRAPH / NODE\tSTATE\tIN/s\tOUT/s\tINBOX\tDROPS\tERRORS\tRESTARTS\tSINCE\tLAST-ERROR")
	for i, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t\t%d\t%d\t%d\t%s\t%s\n", g.Name, stateText(g, now), g.InPerSec, g.OutPerSec,
			g.Dropped, g.Errors, g.Restarts, age(g.Since, now), dash(lastError(g)))
		if d := details[i]; d != nil {
			for _, n := range d.Nodes {
				fmt.Fprintf(tw, "  %s\t%s\t%.1f\t%.1f\t%d/%d\t%d\t%d\t\t\t%s\n", n.ID, n.Kind, n.ConsumedRate, n.ProducedRate,
					n.InboxDepth, n.InboxMax, n.Dropped, n.Errors, dash(oneLine(n.LastError, 60)))
			}
		}
	}
	return tw.Flush()
}
