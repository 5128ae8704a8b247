package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func (a *App) pluginsCommand() *cobra.Command {
	var (
		asJSON bool
		format string
	)
	cmd := &cobra.Command{
		Use:   "plugins [NAME]",
		Short: "List the nodes this build has, with their config keys, defaults and docs",
		Long: `List the nodes this build has, with their role, packet kinds, config keys,
types, defaults and docs. NAME selects nodes: a full plugin string
(schnitzel_stream.nodes.dev:TickerSource or an alias), a class name
(TickerSource, any case), or a substring of either (ticker, sqlite).

How nodes are put together in a graph file: docs/graph-format.md.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completePlugins,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				format = "json"
			}
			entries := a.Registry.Entries()
			if len(args) == 1 {
				found, err := a.findPlugins(args[0])
				if err != nil {
					return err
				}
				entries = found
			}
			infos := make([]plugin.Info, len(entries))
			for i, e := range entries {
				infos[i] = e.Info
			}
			w := cmd.OutOrStdout()
			switch format {
			case "json":
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(infos)
			case "markdown":
				_, err := w.Write([]byte(NodesMarkdown(infos)))
				return err
			case "text", "":
				for _, in := range infos {
					fmt.Fprintf(w, "%s  [%s, in: %s, out: %s]\n    %s\n", in.Name, in.Role, strings.Join(in.In, ","), strings.Join(in.Out, ","), in.Summary)
					for _, al := range in.Aliases {
						fmt.Fprintf(w, "    alias: %s\n", al)
					}
					for _, f := range in.Fields {
						def := ""
						if f.Required {
							def = " (required)"
						} else if f.Default != nil {
							def = fmt.Sprintf(" = %v", jsonish(f.Default))
						}
						fmt.Fprintf(w, "    %s: %s%s  %s\n", f.Key, f.Type, def, f.Doc)
					}
					for _, m := range in.Metrics {
						fmt.Fprintf(w, "    metric %s: %s  %s\n", m.Name, metricKind(m), m.Help)
					}
					fmt.Fprintln(w)
				}
				return nil
			}
			return exitcode.Errorf(exitcode.Usage, "--format must be text, json or markdown, got %q", format)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (same as --format json)")
	cmd.Flags().StringVar(&format, "format", "text", "text, json or markdown")
	return cmd
}

func jsonish(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// NodesMarkdown renders the node reference (docs/nodes.md) from the specs.
func NodesMarkdown(infos []plugin.Info) string {
	var b strings.Builder
	b.WriteString("# Node reference\n\n")
	b.WriteString("Generated from the plugin specs by `schnitzel plugins --format markdown`; do not edit by hand.\n\n")
	for _, in := range infos {
		fmt.Fprintf(&b, "- [`%s`](#%s)\n", in.Name, anchor(in.Name))
	}
	for _, in := range infos {
		fmt.Fprintf(&b, "\n## %s\n\n", in.Name)
		fmt.Fprintf(&b, "Role: **%s** · input kinds: `%s` · output kinds: `%s`", in.Role, strings.Join(in.In, ", "), strings.Join(in.Out, ", "))
		if in.InProfile != "" || in.OutProfile != "" {
			fmt.Fprintf(&b, " · payload profile: in `%s`, out `%s`", or(in.InProfile, "unset"), or(in.OutProfile, "unset"))
		}
		fmt.Fprintf(&b, " · stability: %s\n\n", in.Stability)
		if len(in.Aliases) > 0 {
			fmt.Fprintf(&b, "Aliases: `%s`\n\n", strings.Join(in.Aliases, "`, `"))
		}
		if len(in.OutPorts) > 0 {
			fmt.Fprintf(&b, "Output ports: `%s`\n\n", strings.Join(in.OutPorts, "`, `"))
		}
		b.WriteString(in.Summary + "\n\n")
		if in.Description != "" {
			b.WriteString(in.Description + "\n\n")
		}
		if len(in.Fields) == 0 {
			b.WriteString("No config keys.\n")
		} else {
			b.WriteString("| key | type | default | description |\n|---|---|---|---|\n")
		}
		for _, f := range in.Fields {
			def := ""
			switch {
			case f.Required:
				def = "required"
			case f.Default != nil:
				def = "`" + jsonish(f.Default) + "`"
			}
			if len(f.Enum) > 0 {
				def += " (one of `" + strings.Join(f.Enum, "`, `") + "`)"
			}
			doc := f.Doc
			if len(f.Examples) > 0 {
				doc += " Example: `" + strings.Join(f.Examples, "`, `") + "`."
			}
			var marks []string
			if f.Deprecated != "" {
				marks = append(marks, "deprecated: "+f.Deprecated)
			}
			if f.Secret {
				marks = append(marks, "secret")
			}
			if f.Advanced {
				marks = append(marks, "advanced")
			}
			if len(marks) > 0 {
				doc = "*(" + strings.Join(marks, "; ") + ")* " + doc
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Key, f.Type, def, strings.ReplaceAll(doc, "|", "\\|"))
		}
		if len(in.Metrics) > 0 {
			// Reported as node.<id>.<name> in the run report and as
			// schnitzel_node_metric{name=...} to Prometheus.
			b.WriteString("\nMetrics (report key `node.<id>.<name>`, Prometheus `schnitzel_node_metric{name=\"<name>\"}`; " +
				"a non-zero loss metric makes the run `degraded`):\n\n")
			b.WriteString("| metric | kind | loss | description |\n|---|---|---|---|\n")
			for _, m := range in.Metrics {
				loss := ""
				if m.Loss {
					loss = "yes"
				}
				kind := "counter"
				if m.Gauge {
					kind = "gauge"
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, kind, loss, strings.ReplaceAll(m.Help, "|", "\\|"))
			}
		}
	}
	return b.String()
}

func metricKind(m plugin.MetricSpec) string {
	if m.Gauge {
		return "gauge"
	}
	if m.Loss {
		return "counter (loss: degrades the run)"
	}
	return "counter"
}

func anchor(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// findPlugins selects entries by exact name or alias, then by class name,
// then by substring (case-insensitive) of a name, alias or class name.
func (a *App) findPlugins(q string) ([]*plugin.Entry, error) {
	if e, ok := a.Registry.Lookup(q); ok {
		return []*plugin.Entry{e}, nil
	}
	low := strings.ToLower(strings.TrimSpace(q))
	var byClass, bySub []*plugin.Entry
	for _, e := range a.Registry.Entries() {
		names := append([]string{e.Name}, e.Aliases...)
		class, sub := false, false
		for _, n := range names {
			c := strings.ToLower(shortPlugin(n))
			if c == low {
				class = true
			}
			if strings.Contains(strings.ToLower(n), low) {
				sub = true
			}
		}
		switch {
		case class:
			byClass = append(byClass, e)
		case sub:
			bySub = append(bySub, e)
		}
	}
	if len(byClass) > 0 {
		return byClass, nil
	}
	if len(bySub) > 0 && low != "" {
		return bySub, nil
	}
	msg := fmt.Sprintf("no plugin matches %q in this build", q)
	var classes []string
	for _, e := range a.Registry.Entries() {
		classes = append(classes, shortPlugin(e.Name))
	}
	if near := plugin.Nearest(shortPlugin(q), classes); len(near) > 0 {
		msg += " (did you mean " + strings.Join(near, " or ") + "?)"
	}
	return nil, exitcode.Errorf(exitcode.Usage, "%s; `schnitzel plugins` lists every node", msg)
}
