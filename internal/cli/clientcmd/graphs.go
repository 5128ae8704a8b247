package clientcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/serve"
	"github.com/schnitzel-stream/schnitzel/internal/serve/client"
)

func (o *Options) graphsCommand() *cobra.Command {
	var cn conn
	root := &cobra.Command{
		Use:   "graphs",
		Short: "List, apply, start and stop the graphs of a running schnitzel serve",
		Long: `Drive the graphs of a running "schnitzel serve" over its API:

  schnitzel graphs ls                      every graph: state, rates, restarts, last error
  schnitzel graphs get NAME                one graph: status, nodes, report (--yaml: the file)
  schnitzel graphs apply -f FILE [--name N]  create or hot-reload (name: the file's base name)
  schnitzel graphs rm NAME                 stop and remove
  schnitzel graphs start|stop|restart NAME

Exit codes: 0 ok, 1 the server refused or failed (an invalid graph prints
its diagnostics as FILE:LINE), 2 usage error.`,
	}
	o.register(root, &cn)

	var lsJSON bool
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List the graphs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			gs, err := c.List(cmd.Context())
			if err != nil {
				return failure(err)
			}
			if lsJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"graphs": gs})
			}
			return writeList(cmd.OutOrStdout(), gs, time.Now())
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print the API's JSON")

	var getJSON, getYAML bool
	get := &cobra.Command{
		Use: "get NAME", Short: "Show one graph: status, nodes, report", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			d, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return failure(err)
			}
			w := cmd.OutOrStdout()
			switch {
			case getYAML:
				_, err = io.WriteString(w, d.YAML)
				return err
			case getJSON:
				return writeJSON(w, d)
			}
			return writeDetail(w, d, time.Now())
		},
	}
	get.Flags().BoolVar(&getJSON, "json", false, "print the API's JSON")
	get.Flags().BoolVar(&getYAML, "yaml", false, "print only the graph file as stored")
	get.MarkFlagsMutuallyExclusive("json", "yaml")

	var file, name string
	var stopped, applyJSON bool
	apply := &cobra.Command{
		Use:   "apply -f FILE [--name NAME]",
		Short: "Create a graph or hot-reload it with a new version",
		Long: `Send FILE (- reads stdin) to the server, which validates it under its limits
and env rules: an invalid graph changes nothing and its diagnostics are printed
as FILE:LINE; a valid one is written to the graphs directory and started, or
hot-reloaded (the old version drains, then the new one starts).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, label, err := o.readGraph(file)
			if err != nil {
				return err
			}
			if name == "" {
				if file == "-" {
					return exitcode.Errorf(exitcode.Usage, "-f -: pass --name NAME for a graph read from stdin")
				}
				name = graphName(file)
			}
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			res, err := c.Apply(cmd.Context(), name, data, stopped)
			if client.IsKind(err, "bad_name") {
				return exitcode.Errorf(exitcode.Runtime, "%v (%q)\n  fix: pass --name with letters, digits, '.', '_' or '-' (at most 64, not ending in .yaml)", err, name)
			}
			if err != nil {
				return failure(localDiags(err, label))
			}
			if applyJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			for _, d := range res.Result.Diags {
				d.File = label
				fmt.Fprintln(cmd.ErrOrStderr(), d.String())
			}
			fmt.Fprintln(cmd.OutOrStdout(), applySummary(name, res))
			return nil
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "graph file to apply (- for stdin; required)")
	apply.Flags().StringVar(&name, "name", "", "graph name (default: the file name without .yaml/.yml)")
	apply.Flags().BoolVar(&stopped, "stopped", false, "store it without starting it")
	apply.Flags().BoolVar(&applyJSON, "json", false, "print the API's JSON")
	_ = apply.MarkFlagRequired("file")

	rm := &cobra.Command{
		Use: "rm NAME", Aliases: []string{"delete"}, Short: "Stop a graph and remove it (file and state)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(&cn)
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), args[0]); err != nil {
				return failure(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "graph %s deleted\n", args[0])
			return nil
		},
	}
	action := func(verb, short string) *cobra.Command {
		return &cobra.Command{
			Use: verb + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := o.client(&cn)
				if err != nil {
					return err
				}
				st, err := c.Action(cmd.Context(), args[0], verb)
				if err != nil {
					return failure(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "graph %s: %s (desired %s)\n", st.Name, st.State, st.Desired)
				return nil
			},
		}
	}
	root.AddCommand(ls, get, apply, rm,
		action("start", "Start a stopped graph (and keep it started across restarts)"),
		action("stop", "Stop a graph (and keep it stopped across restarts)"),
		action("restart", "Stop and start a graph"))
	return root
}

func (o *Options) readGraph(file string) ([]byte, string, error) {
	if file == "-" {
		b, err := io.ReadAll(io.LimitReader(o.Stdin, 64<<20))
		if err != nil {
			return nil, "", exitcode.Errorf(exitcode.Usage, "stdin: %v", err)
		}
		return b, "<stdin>", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", exitcode.Errorf(exitcode.Usage, "graph file: %v", err)
	}
	return b, file, nil
}

// graphName is the file's base name without .yaml/.yml.
func graphName(file string) string {
	base := filepath.Base(file)
	for _, ext := range []string{".yaml", ".yml"} {
		if strings.HasSuffix(strings.ToLower(base), ext) {
			return base[:len(base)-len(ext)]
		}
	}
	return base
}

// localDiags names the local file in the diagnostics of an invalid_graph
// answer: the lines are the file's, and an editor can jump to them.
func localDiags(err error, label string) error {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err
	}
	for i := range ae.Errors {
		ae.Errors[i].File = label
	}
	for i := range ae.Warnings {
		ae.Warnings[i].File = label
	}
	return err
}

func applySummary(name string, a *client.Applied) string {
	r := a.Result
	switch {
	case r.Unchanged:
		return fmt.Sprintf("graph %s unchanged (%s)", name, a.Graph.State)
	case r.Created:
		return fmt.Sprintf("graph %s created (%s)", name, a.Graph.State)
	case r.Reloaded:
		return fmt.Sprintf("graph %s reloaded in %s (%s, generation %d)", name, r.ReloadTime.Round(time.Microsecond), a.Graph.State, a.Graph.Generation)
	}
	return fmt.Sprintf("graph %s applied (%s)", name, a.Graph.State)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// age is a short duration for tables: 45s, 12m, 3h, 5d.
func age(since, now time.Time) string {
	if since.IsZero() {
		return "-"
	}
	d := now.Sub(since)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func stateText(g serve.GraphStatus, now time.Time) string {
	s := string(g.State)
	if g.State == serve.StateBackoff && g.BackoffUntil != nil {
		s += " (" + g.BackoffUntil.Sub(now).Round(time.Second).String() + ")"
	}
	if string(g.State) != g.Desired && g.Desired == "stopped" && g.State != serve.StateStopped {
		s += "*"
	}
	return s
}

func lastError(g serve.GraphStatus) string {
	switch {
	case g.ReloadError != "" && g.LastError != "":
		return oneLine("reload refused: "+g.ReloadError+"; "+g.LastError, 80)
	case g.ReloadError != "":
		return oneLine("reload refused: "+g.ReloadError, 80)
	}
	return oneLine(g.LastError, 80)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeList(w io.Writer, gs []serve.GraphStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSTATUS\tIN/s\tOUT/s\tRESTARTS\tSINCE\tLAST-ERROR")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%d\t%s\t%s\n", g.Name, stateText(g, now), dash(g.Status),
			g.InPerSec, g.OutPerSec, g.Restarts, age(g.Since, now), dash(lastError(g)))
	}
	return tw.Flush()
}

func writeDetail(w io.Writer, d *client.Detail, now time.Time) error {
	g := d.GraphStatus
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", g.Name)
	row("state", stateText(g, now)+" (desired "+g.Desired+")")
	row("since", g.Since.Format(time.RFC3339)+" ("+age(g.Since, now)+" ago)")
	row("status", dash(g.Status))
	row("file", g.File)
	row("origin", dash(g.Origin))
	row("generation", fmt.Sprint(g.Generation))
	row("restarts", fmt.Sprint(g.Restarts))
	row("rates", fmt.Sprintf("in %.1f/s, out %.1f/s; dropped %d, errors %d", g.InPerSec, g.OutPerSec, g.Dropped, g.Errors))
	if g.LastError != "" {
		row("last error", g.LastError)
	}
	if g.ReloadError != "" {
		row("reload refused", g.ReloadError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Nodes) > 0 {
		fmt.Fprintln(w)
		if err := writeNodes(w, d.Nodes, ""); err != nil {
			return err
		}
	}
	if len(d.Edges) > 0 {
		fmt.Fprintln(w, "\nedges:")
		for _, e := range d.Edges {
			from, to := e.From, e.To
			if e.FromPort != "" {
				from += "." + e.FromPort
			}
			if e.ToPort != "" {
				to += "." + e.ToPort
			}
			fmt.Fprintf(w, "  %s -> %s\n", from, to)
		}
	}
	return nil
}

func writeNodes(w io.Writer, nodes []serve.NodeStatus, indent string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%sNODE\tKIND\tIN/s\tOUT/s\tCONSUMED\tPRODUCED\tINBOX\tDROPS\tERRORS\tLAST-ERROR\n", indent)
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s%s\t%s\t%.1f\t%.1f\t%d\t%d\t%d/%d\t%d\t%d\t%s\n", indent, n.ID, n.Kind, n.ConsumedRate, n.ProducedRate,
			n.Consumed, n.Produced, n.InboxDepth, n.InboxMax, n.Dropped, n.Errors, dash(oneLine(n.LastError, 60)))
	}
	return tw.Flush()
}
