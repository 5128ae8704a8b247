package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
)

func (a *App) graphCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw a graph as Graphviz DOT or Mermaid, or print the graph file JSON Schema",
		Long: `Draw a graph: schnitzel graph dot --graph G | dot -Tsvg > g.svg, or
schnitzel graph mermaid --graph G. The graph may also be given as the only
argument (graph dot G); --graph - reads it from standard input.

schnitzel graph schema > schnitzel.schema.json prints a JSON Schema for graph
files, generated from this binary's nodes, for editors (yaml-language-server:
put "# yaml-language-server: $schema=schnitzel.schema.json" on a graph's first line).`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "Print a JSON Schema for graph files (every node's config), for editors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := graph.Schema(a.Registry)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		},
	})
	cmd.AddCommand(a.splitCommand())
	for _, format := range []string{"dot", "mermaid"} {
		var path string
		sub := &cobra.Command{
			Use:               format + " --graph G",
			Short:             "Print the graph as " + format,
			Args:              cobra.MaximumNArgs(1),
			ValidArgsFunction: completeGraphFiles,
			RunE: func(cmd *cobra.Command, args []string) error {
				p, err := graphArg(path, args)
				if err != nil {
					return err
				}
				g, diags, err := a.loadFile(p)
				if err != nil {
					return err
				}
				if g == nil || diags.HasErrors() {
					printDiags(cmd.ErrOrStderr(), diags)
					return exitcode.Errorf(exitcode.Usage, "%s: cannot load graph", p)
				}
				if g.Version != 2 {
					return exitcode.Errorf(exitcode.Usage, "%s: a v1 job graph has no nodes to draw (job %s)", p, g.Job)
				}
				if format == "dot" {
					writeDot(cmd.OutOrStdout(), g)
				} else {
					writeMermaid(cmd.OutOrStdout(), g)
				}
				return nil
			},
		}
		sub.Flags().StringVar(&path, "graph", "", "graph file to draw (- reads standard input)")
		cmd.AddCommand(sub)
	}
	return cmd
}

// splitCommand writes each connected part of a graph cut by
// transport: nats edges as a graph file of its own, to deploy the parts on
// different machines.
func (a *App) splitCommand() *cobra.Command {
	var path, out string
	cmd := &cobra.Command{
		Use:   "split FILE --out DIR",
		Short: "Write each part of a graph cut by transport: nats edges as a standalone graph file",
		Long: `A graph whose edges say transport: nats falls apart into connected parts
(the edge becomes a JetStreamSink on one side and a JetStreamSource on the
other). split validates the graph and writes each part to DIR as
<name>.part<N>.<first node id>.yaml, which runs on its own (schnitzel --graph F).
Interpolations (${oc.env:...}) are resolved when splitting: the files hold the
values, so they are written with mode 0600.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeGraphFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := graphArg(path, args)
			if err != nil {
				return err
			}
			if out == "" {
				return exitcode.Errorf(exitcode.Usage, "graph split: --out DIR is required")
			}
			plan, diags, err := a.load(p, false)
			printDiags(cmd.ErrOrStderr(), diags)
			if err != nil {
				return exitcode.Errorf(exitcode.Usage, "%s: graph is invalid: %d error(s)", p, len(diags.Errors()))
			}
			g := plan.Graph
			if g.Version != 2 {
				return exitcode.Errorf(exitcode.Usage, "%s: a v1 job graph has no parts to split (job %s)", p, g.Job)
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return exitcode.Errorf(exitcode.Runtime, "graph split: %v", err)
			}
			parts := g.Parts()
			base := fileSafe(strings.TrimSuffix(strings.TrimSuffix(filepath.Base(g.File), ".yaml"), ".yml"))
			for i, part := range parts {
				sub, err := g.Part(part[0].ID)
				if err != nil {
					return exitcode.New(exitcode.Runtime, err)
				}
				name := fmt.Sprintf("%s.part%d.%s.yaml", base, i+1, fileSafe(part[0].ID))
				header := fmt.Sprintf("part %d of %d of %s, written by schnitzel graph split", i+1, len(parts), g.File)
				data, err := graph.WriteV2(sub, header)
				if err != nil {
					return exitcode.Errorf(exitcode.Runtime, "graph split: part %d: %v", i+1, err)
				}
				dst := filepath.Join(out, name)
				if err := os.WriteFile(dst, data, 0o600); err != nil {
					return exitcode.Errorf(exitcode.Runtime, "graph split: %v", err)
				}
				ids := make([]string, len(part))
				for j, n := range part {
					ids[j] = n.ID
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", dst, strings.Join(ids, ","))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "graph", "", "graph file to split (- reads standard input)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the parts to (created if missing)")
	return cmd
}

// fileSafe keeps a node id to characters every file system takes.
func fileSafe(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// graphArg takes the graph from --graph or, as an alias, the one
// positional argument; giving both (differently) or neither is an error.
func graphArg(flag string, args []string) (string, error) {
	switch {
	case len(args) == 1 && flag != "" && args[0] != flag:
		return "", exitcode.Errorf(exitcode.Usage, "give the graph once: --graph %s or %s, not both", flag, args[0])
	case len(args) == 1:
		return args[0], nil
	case flag != "":
		return flag, nil
	}
	return "", exitcode.Errorf(exitcode.Usage, "no graph given: use --graph FILE (or - for standard input)")
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
		fmt.Fprintf(w, "  %s [label=%s, shape=%s];\n", dotQuote(n.ID), dotLabel(n.ID, shortPlugin(n.Plugin)), shape)
	}
	for _, e := range g.Edges {
		label := ""
		if e.FromPort != "" || e.ToPort != "" {
			label = " [label=" + dotQuote(strings.Trim(e.FromPort+" -> "+e.ToPort, " ->")) + "]"
		}
		fmt.Fprintf(w, "  %s -> %s%s;\n", dotQuote(e.From), dotQuote(e.To), label)
	}
	for _, e := range g.Cuts { // the process boundary: through the server
		pub, sub := graph.CutNodeIDs(e)
		fmt.Fprintf(w, "  %s -> %s [style=dashed, label=%s];\n", dotQuote(pub), dotQuote(sub), dotQuote("nats "+e.NATS.Subject))
	}
	fmt.Fprintln(w, "}")
}

// dotQuote writes s as a DOT quoted string. DOT knows only two escapes in
// one: \" and a backslash before a newline; Go's %q would turn a newline
// escape into a literal backslash-n that Graphviz prints as is.
func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}

// dotLabel is a label of several lines (\n is Graphviz's centred line
// break inside a quoted label).
func dotLabel(lines ...string) string {
	q := make([]string, len(lines))
	for i, l := range lines {
		q[i] = strings.Trim(dotQuote(l), `"`)
	}
	return `"` + strings.Join(q, `\n`) + `"`
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
	for _, e := range g.Cuts {
		pub, sub := graph.CutNodeIDs(e)
		fmt.Fprintf(w, "  %s -.->|%s| %s\n", mermaidID(pub), mermaidText("nats "+e.NATS.Subject), mermaidID(sub))
	}
}
