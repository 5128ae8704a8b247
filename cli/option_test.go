package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// TestWithCommand: a custom binary's command is reachable beside the
// built-in ones, and its error exits 1 (runtime), not 2 (usage).
func TestWithCommand(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"ok", nil, 0, "hello"},
		{"error", errors.New("boom"), 1, "error: boom"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			a := &App{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
				LookupEnv: func(string) (string, bool) { return "", false }, Registry: plugin.NewRegistry()}
			WithCommand(&cobra.Command{Use: "hello", RunE: func(cmd *cobra.Command, _ []string) error {
				fmt.Fprint(cmd.OutOrStdout(), "hello")
				return tc.err
			}})(a)
			code := a.Run([]string{"hello"})
			if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, out.String(), errb.String(), tc.code, tc.out)
			}
		})
	}
}
