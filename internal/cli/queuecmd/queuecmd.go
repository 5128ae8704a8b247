// Package queuecmd is `schnitzel queue`: inspect and repair a durable
// SQLite queue file (stats, peek, dead, requeue, purge, release) without running a
// graph.
package queuecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/queue"
)

// Command returns the `queue` command group.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "queue",
		Short: "Inspect and repair a durable SQLite queue file",
		Long: `Inspect and repair the SQLite queue file of SqliteQueueSink / SqliteQueueSource
(also files written by the Python project). Paths are relative to the working directory.
The file must exist: these commands never create a queue. stats, peek and dead open it
read-only and write nothing (they work on a read-only file or mount); requeue, purge and
release write. They are safe while a graph uses the file (SQLite locking; writes wait up
to 30s for the lock).

Exit codes: 0 ok, 1 runtime error (I/O, corrupt file, lock timeout), 2 usage error or a
path that is not a queue.`,
		SilenceUsage: true,
	}
	root.AddCommand(statsCmd(), peekCmd(), deadCmd(), requeueCmd(), purgeCmd(), releaseCmd())
	return root
}

type common struct {
	path string
	json bool
}

func (c *common) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.path, "path", "", "queue file (required)")
	cmd.Flags().BoolVar(&c.json, "json", false, "machine-readable JSON on stdout")
}

func (c *common) open() (*queue.Queue, error) { return c.openMode(false) }

// openRO opens the file read-only: nothing is written, not even the
// schnitzel tables of a file only the Python project wrote.
func (c *common) openRO() (*queue.Queue, error) { return c.openMode(true) }

func (c *common) openMode(ro bool) (*queue.Queue, error) {
	if strings.TrimSpace(c.path) == "" {
		return nil, exitcode.New(exitcode.Usage, errors.New("--path is required: the queue file, e.g. --path outputs/queues/dev_demo.sqlite3"))
	}
	if err := sqliteHeader(c.path); err != nil {
		return nil, exitcode.New(exitcode.Usage, err)
	}
	q, err := queue.Open(c.path, queue.Options{MustExist: true, ReadOnly: ro})
	if err != nil {
		return nil, classify(err)
	}
	return q, nil
}

// sqliteHeader refuses, as the user's mistake (exit 2), a path that holds
// something other than an SQLite file: a text file, a graph, a video. A
// file that has the header but is damaged stays the run's failure (1).
func sqliteHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // queue.Open says what is wrong with the path
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	if n == 0 {
		return nil // an empty file is a new SQLite database to the driver
	}
	if string(head[:n]) != "SQLite format 3\x00" {
		return fmt.Errorf("queue %s: not an SQLite file (a queue file starts with \"SQLite format 3\"); is --path the right file?", path)
	}
	return nil
}

// classify maps queue errors to exit codes: a wrong path is the user's
// (2), a failing file or disk is the run's (1).
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range []error{queue.ErrNotExist, queue.ErrNotQueue, queue.ErrNewerSchema} {
		if errors.Is(err, k) {
			return exitcode.New(exitcode.Usage, err)
		}
	}
	var qe *queue.Error
	if errors.As(err, &qe) && qe.Kind == nil && qe.Op == "open" && strings.Contains(err.Error(), "directory") {
		return exitcode.New(exitcode.Usage, err)
	}
	return exitcode.New(exitcode.Runtime, err)
}

func closeQ(q *queue.Queue, err *error) {
	if cerr := q.Close(); cerr != nil && *err == nil {
		*err = classify(cerr)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// progress returns a progress reporter that draws a bar on stderr when it
// is a terminal, and does nothing otherwise (logs and pipes stay clean).
func progress(cmd *cobra.Command, desc string) (func(done, total int64), func()) {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !(isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return func(int64, int64) {}, func() {}
	}
	var bar *progressbar.ProgressBar
	report := func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(desc),
				progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(100*time.Millisecond))
		}
		bar.Set64(done)
	}
	finish := func() {
		if bar != nil {
			bar.Finish()
		}
	}
	return report, finish
}

func statsCmd() *cobra.Command {
	var c common
	var check bool
	cmd := &cobra.Command{
		Use:   "stats --path Q",
		Short: "Counts: queued, leased, retrying, dead letters, remembered keys, file size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			q, err := c.openRO()
			if err != nil {
				return err
			}
			defer closeQ(q, &err)
			ctx := cmdContext(cmd)
			s, err := q.Stats(ctx)
			if err != nil {
				return classify(err)
			}
			owners, err := q.Owners(ctx)
			if err != nil {
				return classify(err)
			}
			if owners == nil {
				owners = []queue.OwnerLeases{}
			}
			var integrity []string
			if check {
				report, finish := progress(cmd, "integrity check")
				report(0, -1)
				integrity, err = q.Check(ctx)
				finish()
				if err != nil {
					return classify(err)
				}
			}
			if c.json {
				out := struct {
					queue.Stats
					Owners    []queue.OwnerLeases `json:"lease_owners"`
					Integrity []string            `json:"integrity,omitempty"`
				}{s, owners, integrity}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "path\t%s\n", s.Path)
			fmt.Fprintf(w, "queue_id\t%s\n", s.QueueID)
			fmt.Fprintf(w, "schema_version\t%d\n", s.SchemaVersion)
			fmt.Fprintf(w, "rows\t%d\t(leased %d, waiting to retry %d, retried %d)\n", s.Rows, s.Leased, s.Delayed, s.Retried)
			for _, o := range owners {
				state := "alive"
				if !o.Alive {
					state = "not alive: `schnitzel queue release --all-dead` (or its next start) gives them back"
				}
				fmt.Fprintf(w, "lease owner\t%s\t%d rows, until %s, %s\n", o.Owner, o.Rows, o.Until, state)
			}
			fmt.Fprintf(w, "bytes\t%d\n", s.Bytes)
			if s.Rows > 0 {
				fmt.Fprintf(w, "seq\t%d..%d\n", s.MinSeq, s.MaxSeq)
				fmt.Fprintf(w, "oldest\t%s\n", s.OldestEnqueue)
				fmt.Fprintf(w, "newest\t%s\n", s.NewestEnqueue)
			}
			fmt.Fprintf(w, "dead\t%d\n", s.Dead)
			fmt.Fprintf(w, "dedup_keys\t%d\n", s.DedupKeys)
			fmt.Fprintf(w, "file\t%d bytes (WAL %d bytes, %d pages, %d free)\n", s.FileBytes, s.WALBytes, s.PageCount, s.FreePages)
			if check {
				fmt.Fprintf(w, "integrity\t%s\n", strings.Join(integrity, "; "))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if check && (len(integrity) != 1 || integrity[0] != "ok") {
				return exitcode.Errorf(exitcode.Runtime, "queue %s: integrity check failed: %s", c.path, strings.Join(integrity, "; "))
			}
			return nil
		},
	}
	c.flags(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "also run SQLite's integrity check (reads the whole file)")
	return cmd
}

func listCmd(use, short string, list func(*queue.Queue, context.Context, int64, int) ([]queue.Entry, error)) *cobra.Command {
	var c common
	var limit int
	var after int64
	cmd := &cobra.Command{
		Use:   use + " --path Q",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if limit <= 0 {
				return exitcode.Errorf(exitcode.Usage, "--limit must be > 0, got %d", limit)
			}
			q, err := c.openRO()
			if err != nil {
				return err
			}
			defer closeQ(q, &err)
			ctx := cmdContext(cmd)
			ents, err := list(q, ctx, after, limit)
			if err != nil {
				return classify(err)
			}
			if c.json {
				if ents == nil {
					ents = []queue.Entry{}
				}
				return writeJSON(cmd.OutOrStdout(), ents)
			}
			w := cmd.OutOrStdout()
			if len(ents) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "(none)")
			}
			for _, e := range ents {
				fmt.Fprintf(w, "seq=%d enqueued_at=%s kind=%s source_id=%s packet_id=%s key=%s attempts=%d", e.Seq, e.EnqueuedAt, e.Kind, e.SourceID, e.PacketID, e.Key, e.Attempts)
				if e.LeasedUntil != "" {
					fmt.Fprintf(w, " leased_until=%s", e.LeasedUntil)
				}
				if e.RetryAt != "" {
					fmt.Fprintf(w, " retry_at=%s", e.RetryAt)
				}
				if e.DeadAt != "" {
					fmt.Fprintf(w, " dead_at=%s", e.DeadAt)
				}
				fmt.Fprintf(w, "\n  payload=%s\n  meta=%s\n", clip(e.PayloadJSON), clip(e.MetaJSON))
				if e.LastError != "" {
					fmt.Fprintf(w, "  last_error=%s\n", e.LastError)
				}
			}
			return nil
		},
	}
	c.flags(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "rows to show")
	cmd.Flags().Int64Var(&after, "after", 0, "show rows with seq greater than this (paging)")
	return cmd
}

// clip keeps text output readable; --json shows everything.
func clip(s string) string {
	const max = 300
	if len(s) <= max {
		return s
	}
	return s[:max] + fmt.Sprintf("... (%d bytes)", len(s))
}

func peekCmd() *cobra.Command {
	return listCmd("peek", "Show queued rows in order, without leasing them", (*queue.Queue).Peek)
}

func deadCmd() *cobra.Command {
	return listCmd("dead", "Show dead letters with their attempts and last error", (*queue.Queue).Dead)
}

func requeueCmd() *cobra.Command {
	var c common
	var seqs []int64
	var all bool
	cmd := &cobra.Command{
		Use:   "requeue --path Q (--seq N... | --all)",
		Short: "Move dead letters back to the queue tail (attempts reset)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if all == (len(seqs) > 0) {
				return exitcode.New(exitcode.Usage, errors.New("give either --seq (repeatable) or --all"))
			}
			q, err := c.open()
			if err != nil {
				return err
			}
			defer closeQ(q, &err)
			ctx := cmdContext(cmd)
			report, finish := progress(cmd, "requeue")
			n, skipped, err := q.Requeue(ctx, seqs, report)
			finish()
			if err != nil {
				return classify(err)
			}
			if c.json {
				if err := writeJSON(cmd.OutOrStdout(), map[string]int64{"requeued": n, "skipped": skipped}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "requeued %d dead letters (%d skipped: not found or key already queued)\n", n, skipped)
			}
			if n == 0 && skipped > 0 {
				// Asked to requeue and nothing moved: a script must see it.
				return exitcode.Errorf(exitcode.Runtime, "nothing requeued: %d dead letter(s) not found or their key already queued", skipped)
			}
			return nil
		},
	}
	c.flags(cmd)
	cmd.Flags().Int64SliceVar(&seqs, "seq", nil, "dead letter seq to requeue (repeatable, or comma-separated)")
	cmd.Flags().BoolVar(&all, "all", false, "requeue every dead letter")
	return cmd
}

func purgeCmd() *cobra.Command {
	var c common
	var w queue.PurgeWhat
	var everything bool
	cmd := &cobra.Command{
		Use:   "purge --path Q (--dead | --queued | --dedup | --all)",
		Short: "Delete dead letters, queued rows or remembered keys (cannot be undone)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if everything {
				w = queue.PurgeWhat{Queued: true, Dead: true, Dedup: true}
			}
			if !w.Queued && !w.Dead && !w.Dedup {
				return exitcode.New(exitcode.Usage, errors.New("say what to purge: --dead, --queued, --dedup or --all"))
			}
			q, err := c.open()
			if err != nil {
				return err
			}
			defer closeQ(q, &err)
			ctx := cmdContext(cmd)
			report, finish := progress(cmd, "purge")
			report(0, -1)
			pc, err := q.Purge(ctx, w)
			finish()
			if err != nil {
				return classify(err)
			}
			if c.json {
				return writeJSON(cmd.OutOrStdout(), pc)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "purged %d queued rows, %d dead letters, %d remembered keys\n", pc.Queued, pc.Dead, pc.Dedup)
			return nil
		},
	}
	c.flags(cmd)
	cmd.Flags().BoolVar(&w.Dead, "dead", false, "delete every dead letter")
	cmd.Flags().BoolVar(&w.Queued, "queued", false, "delete every queued row, leased or not (undelivered data is lost)")
	cmd.Flags().BoolVar(&w.Dedup, "dedup", false, "forget the keys of acked rows (replays will be stored again)")
	cmd.Flags().BoolVar(&everything, "all", false, "all of the above")
	return cmd
}

func releaseCmd() *cobra.Command {
	var c common
	var consumer string
	var allDead, force bool
	cmd := &cobra.Command{
		Use:   "release --path Q (--consumer C | --all-dead)",
		Short: "Give back the rows a consumer holds leased (no attempt is charged)",
		Long: `Give back the rows leased by one consumer (--consumer, refused while that consumer is
alive unless --force), or by every consumer that is not alive (--all-dead). Readers do this
themselves when they start; the command is for a reader that will not be started again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if allDead == (consumer != "") {
				return exitcode.New(exitcode.Usage, errors.New("give either --consumer NAME or --all-dead"))
			}
			q, err := c.open()
			if err != nil {
				return err
			}
			defer closeQ(q, &err)
			n, err := q.ReleaseOwners(cmdContext(cmd), consumer, force)
			if err != nil {
				return classify(err)
			}
			if c.json {
				return writeJSON(cmd.OutOrStdout(), map[string]int64{"released": n})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %d leased rows\n", n)
			return nil
		},
	}
	c.flags(cmd)
	cmd.Flags().StringVar(&consumer, "consumer", "", "the consumer whose leases to give back (see `queue stats`)")
	cmd.Flags().BoolVar(&allDead, "all-dead", false, "give back the leases of every consumer that is not alive")
	cmd.Flags().BoolVar(&force, "force", false, "with --consumer: release even if it is alive (it may then deliver rows another reader also gets)")
	return cmd
}

// cmdContext is the command's context, or Background when it was run
// without one (tests call RunE directly).
func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
