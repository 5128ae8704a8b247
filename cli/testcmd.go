package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/graphtest"
)

func init() {
	extraCommands = append(extraCommands, func(a *App) *cobra.Command { return a.testCommand() })
}

func (a *App) testCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "test [PATH...]",
		Short: "Run graph unit tests (*_test.yaml): feed packets, check what nodes emit",
		Long: `Run graph unit tests: YAML files named *_test.yaml (a directory is searched,
default the current one) that name a graph, feed packets to its sources or
nodes, and state what its sinks or nodes must emit. Sources other than
StaticSource are replaced by the test's packets (or none), every sink by a
recorder, so a test needs no camera, broker or network.

  graph: ../graphs/my_graph_v2.yaml
  tests:
    - name: hot readings are kept
      inputs:
        src:                    # a source (or any node) id
          - {kind: reading, source_id: s1, payload: {temp: 31}}
      expect:
        out:                    # a sink (or any node) id
          count: 1
          packets:
            - {kind: reading, payload: {temp: 31}}

Each case prints PASS or FAIL with what differed; the exit code is 1 when any
case fails, 2 when a file is not a valid test file. Format: docs/graph-format.md.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			files, err := graphtest.Find(args)
			if err != nil {
				return exitcode.New(exitcode.Usage, err)
			}
			if len(files) == 0 {
				return exitcode.Errorf(exitcode.Usage, "no test files (*%s) under %s", graphtest.Suffix, strings.Join(args, " "))
			}
			var all []graphtest.Result
			var loadErrs []string
			for _, p := range files {
				f, err := graphtest.LoadFile(p)
				if err != nil {
					loadErrs = append(loadErrs, err.Error())
					continue
				}
				all = append(all, graphtest.Run(context.Background(), f, graphtest.Options{
					Registry: a.Registry, Getenv: a.Getenv, Prefixes: a.Prefixes})...)
			}
			failed := 0
			for _, r := range all {
				if !r.Pass {
					failed++
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(map[string]any{"results": all, "passed": len(all) - failed, "failed": failed, "errors": loadErrs}, "", "  ")
				fmt.Fprintf(out, "%s\n", b)
			} else {
				for _, r := range all {
					if r.Pass {
						fmt.Fprintf(out, "PASS %s:%d %s (%.2fs)\n", r.File, r.Line, r.Name, r.Seconds)
						continue
					}
					fmt.Fprintf(out, "FAIL %s:%d %s\n", r.File, r.Line, r.Name)
					for _, f := range r.Failures {
						fmt.Fprintf(out, "    %s\n", f)
					}
				}
				for _, e := range loadErrs {
					fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", e)
				}
				fmt.Fprintf(out, "%d passed, %d failed\n", len(all)-failed, failed)
			}
			switch {
			case len(loadErrs) > 0:
				return exitcode.Errorf(exitcode.Usage, "%d test file(s) invalid", len(loadErrs))
			case failed > 0:
				return exitcode.Errorf(exitcode.Runtime, "%d of %d test(s) failed", failed, len(all))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print results as JSON")
	return cmd
}
