package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/schnitzel-stream/schnitzel/nodes/all"
)

// cliResult is what one command line printed and returned.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs args in-process with the full registry, env as the whole
// environment and stdin as standard input.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	a := &App{
		Stdout: &out, Stderr: &errb,
		Stdin:     strings.NewReader(stdin),
		Getenv:    func(k string) string { return env[k] },
		LookupEnv: lookup,
		Registry:  all.Registry(),
		HardExit:  func(int) { t.Fatal("hard exit") },
	}
	code := a.Run(args)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}
