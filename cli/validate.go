package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graph"
	"github.com/schnitzel-stream/schnitzel/redact"
)

func (a *App) validateCommand() *cobra.Command {
	var (
		graphs     []string
		asJSON     bool
		strict     bool
		useDefault bool
		logOpts    logOptions
		legacyRO   runOptions
	)
	cmd := &cobra.Command{
		Use:   "validate (--graph G | FILE | DIR)... [--default]",
		Short: "Check graphs without running them",
		Long: `Load and validate graphs: YAML, topology (duplicate ids, unknown edge
endpoints, cycles), kinds, ports, plugin allowlist and every node's config.
Every problem is reported with file:line. A DIR (or DIR/...) argument checks
every .yaml/.yml file below DIR; --graph - reads a graph from standard input;
--default checks the built-in graph that a run without --graph uses. Giving no
graph at all is an error. With --log-format json each diagnostic is a JSON log
record on stderr.

The file format (keys, kinds, ports, cycles, __runtime__, interpolation) is
documented in docs/graph-format.md; node config keys: schnitzel plugins NAME.

Exit code 0 when every graph is valid, 2 when any is invalid.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := a.graphLimits(); err != nil {
				return err // a bad limit is a usage error, not an invalid graph
			}
			var paths []string
			for _, arg := range append(append([]string(nil), graphs...), args...) {
				expanded, err := expandGraphArg(arg)
				if err != nil {
					return exitcode.New(exitcode.Usage, err)
				}
				if len(expanded) == 1 && expanded[0] == arg {
					paths = append(paths, arg) // named explicitly: always checked
					continue
				}
				for _, p := range expanded {
					// A directory also holds other YAML (app configs,
					// zone files): only graph files are checked.
					if isProcgraph(p) {
						if !asJSON {
							fmt.Fprintf(cmd.ErrOrStderr(), "%s: skipped (a process graph: check it with schnitzel procgraph validate --spec %s)\n", p, p)
						}
						continue
					}
					if !looksLikeGraph(p) {
						if !asJSON {
							fmt.Fprintf(cmd.ErrOrStderr(), "%s: skipped (not a graph file: no version, job, nodes or edges at the top level)\n", p)
						}
						continue
					}
					paths = append(paths, p)
				}
			}
			if useDefault {
				paths = append(paths, "") // the built-in graph
			}
			if len(paths) == 0 {
				return exitcode.Errorf(exitcode.Usage, "no graph given: validate --graph FILE, validate FILE or DIR, or validate --default for the built-in graph (see docs/graph-format.md)")
			}
			type result struct {
				Graph    string       `json:"graph"`
				Valid    bool         `json:"valid"`
				Version  int          `json:"version,omitempty"`
				Errors   []graph.Diag `json:"errors"`
				Warnings []graph.Diag `json:"warnings"`
			}
			var results []result
			bad := 0
			for _, p := range paths {
				plan, diags, err := a.load(p, strict)
				name := p
				if p == "-" {
					name = stdinName
				}
				r := result{Graph: name, Valid: err == nil, Errors: nonNil(diags.Errors()), Warnings: nonNil(diags.Warnings())}
				if plan != nil {
					r.Version = plan.Graph.Version
					if name == "" {
						r.Graph = plan.Graph.File
					}
				}
				if err != nil {
					bad++
				}
				results = append(results, r)
				if !asJSON {
					printDiags(cmd.ErrOrStderr(), diags)
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if len(results) == 1 {
					_ = enc.Encode(results[0])
				} else {
					_ = enc.Encode(results)
				}
			} else {
				for _, r := range results {
					if r.Valid {
						fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", displayName(r.Graph))
					}
				}
			}
			if bad > 0 {
				if asJSON {
					return exitcode.New(exitcode.Usage, nil)
				}
				return exitcode.Errorf(exitcode.Usage, "%d of %d graph(s) invalid", bad, len(results))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&graphs, "graph", nil, "graph file to check (repeatable)")
	f.BoolVar(&asJSON, "json", false, "print results as JSON on stdout")
	f.BoolVar(&strict, "strict", false, "treat warnings as errors")
	f.BoolVar(&useDefault, "default", false, "also check the built-in graph (what a run without --graph uses)")
	// Accepted so that 'validate' takes the same flags as a run (upstream's
	// validate is the run command with --validate-only).
	f.BoolVar(&legacyRO.validateOnly, "validate-only", true, "no effect (validate never runs)")
	_ = f.MarkHidden("validate-only")
	f.BoolVar(&legacyRO.reportJSON, "report-json", false, "no effect")
	_ = f.MarkHidden("report-json")
	logOpts.register(cmd)
	return cmd
}

// nonNil returns d (never nil) with its messages masked: a config error
// may quote a URL.
func nonNil(d graph.Diags) []graph.Diag {
	out := make([]graph.Diag, len(d))
	for i, x := range d {
		x.Msg = redact.Text(x.Msg)
		out[i] = x
	}
	return out
}

func displayName(p string) string {
	if p == "" {
		return "(default graph)"
	}
	return p
}

// expandGraphArg turns a directory (DIR or DIR/...) into every .yaml/.yml
// file below it; anything else is one graph.
func expandGraphArg(arg string) ([]string, error) {
	dir := strings.TrimSuffix(arg, "/...")
	if dir == arg {
		if st, err := os.Stat(arg); err != nil || !st.IsDir() {
			return []string{arg}, nil // "-", a file, or a missing path (reported by the loader)
		}
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", arg, err)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no .yaml files", arg)
	}
	return out, nil
}

// looksLikeGraph reports whether a YAML file found in a directory is meant
// as a graph: its top level is a mapping with version, job, nodes or
// edges (a skipped file is named on stderr, never silently). Files that cannot be read or parsed count as graphs, so that
// their errors are reported.
func looksLikeGraph(path string) bool {
	return hasTopKey(path, true, "version", "job", "nodes", "edges")
}

// isProcgraph: a process graph file (processes/channels/links, no nodes).
func isProcgraph(path string) bool {
	return hasTopKey(path, false, "processes", "links") && !hasTopKey(path, false, "nodes", "job")
}

// hasTopKey reports whether the YAML file has one of keys at the top
// level; unreadable or unparsable files give dflt.
func hasTopKey(path string, dflt bool, keys ...string) bool {
	// Only the top-level keys are looked at, on the parsed node tree
	// (aliases stay unexpanded), and a file past the loader's size limit
	// is left for the loader to refuse: a hostile file in a directory
	// costs no more here than in validate itself.
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() || fi.Size() > graph.DefaultLimits.MaxFileBytes {
		return dflt
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return dflt
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return dflt
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return dflt
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if slices.Contains(keys, top.Content[i].Value) {
			return true
		}
	}
	return false
}
