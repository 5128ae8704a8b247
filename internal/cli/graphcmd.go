package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
)

func (a *App) graphCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw a graph as Graphviz DOT or Mermaid",
	}
	for _, format := range []string{"dot", "mermaid"} {
		cmd.AddCommand(&cobra.Command{
			Use:   format + " GRAPH",
			Short: "Print the graph as " + format,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				g, diags, err := a.loadFile(args[0])
				if err != nil {
					return err
				}
				if g == nil || diags.HasErrors() {
					printDiags(cmd.ErrOrStderr(), diags)
					return exitcode.Errorf(exitcode.Usage, "%s: cannot load graph", args[0])
				}
				if g.Version != 2 {
					return exitcode.Errorf(exitcode.Usage, "%s: a v1 job graph has no nodes to draw (job %s)", args[0], g.Job)
				}
				if format == "dot" {
					writeDot(cmd.OutOrStdout(), g)
				} else {
					writeMermaid(cmd.OutOrStdout(), g)
				}
				return nil
			},
		})
	}
	return cmd
}

func shortPlugin(p string) string {
	if i := strings.LastIndex(p, ":"); i >= 0 {
		return p[i+1:]
	}
	return p
}

func writeDot(w io.Writer, g *graph.Graph) {
	fmt.Fprintln(w, "digraph schnitzel {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, "  node [shape=box, fontname=\"Helvetica\"];")
	for _, n := range g.Nodes {
		shape := "box"
		switch n.Kind {
		case graph.KindSource:
			shape = "invhouse"
		case graph.KindSink:
			shape = "house"
		case graph.KindDelay, graph.KindInitial:
			shape = "diamond"
		}
		fmt.Fprintf(w, "  %q [label=%q, shape=%s];\n", n.ID, n.ID+"\\n"+shortPlugin(n.Plugin), shape)
	}
	for _, e := range g.Edges {
		label := ""
		if e.FromPort != "" || e.ToPort != "" {
			label = fmt.Sprintf(" [label=%q]", strings.Trim(e.FromPort+" -> "+e.ToPort, " ->"))
		}
		fmt.Fprintf(w, "  %q -> %q%s;\n", e.From, e.To, label)
	}
	fmt.Fprintln(w, "}")
}

func mermaidID(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteString(fmt.Sprintf("_%x_", r))
		}
	}
	return b.String()
}

// mermaidText escapes s for a quoted Mermaid label or an edge label: a
// quote, bar, bracket or line break from a node id would end the label
// and start a directive of the file's own (click ... "javascript:...").
func mermaidText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\"|<>#&[](){}", r) || unicode.IsControl(r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			fmt.Fprintf(&b, "#%d;", r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeMermaid(w io.Writer, g *graph.Graph) {
	fmt.Fprintln(w, "flowchart LR")
	for _, n := range g.Nodes {
		open, closing := "[", "]"
		switch n.Kind {
		case graph.KindSource:
			open, closing = "([", "])"
		case graph.KindSink:
			open, closing = "[(", ")]"
		case graph.KindDelay, graph.KindInitial:
			open, closing = "{", "}"
		}
		fmt.Fprintf(w, "  %s%s\"%s<br/>%s\"%s\n", mermaidID(n.ID), open, mermaidText(n.ID), mermaidText(shortPlugin(n.Plugin)), closing)
	}
	for _, e := range g.Edges {
		label := ""
		if e.FromPort != "" || e.ToPort != "" {
			label = "|" + mermaidText(strings.Trim(e.FromPort+" -> "+e.ToPort, " ->")) + "|"
		}
		fmt.Fprintf(w, "  %s -->%s %s\n", mermaidID(e.From), label, mermaidID(e.To))
	}
}
