package service

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	in := `# comment
; also a comment

A=1
export B = two words
C='single $HOME "q"'
D="dq \"x\" \\ \n end"
E=
F=a=b
`
	got, err := ParseEnvFile(strings.NewReader(in), "x.env")
	if err != nil {
		t.Fatal(err)
	}
	want := []EnvVar{{"A", "1"}, {"B", "two words"}, {"C", `single $HOME "q"`}, {"D", "dq \"x\" \\ \n end"}, {"E", ""}, {"F", "a=b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestParseEnvFileErrors(t *testing.T) {
	for _, in := range []string{"NOEQUALS", "1A=x", "A B=x", `A="open`, `A="x"y"`, `A="x\"`} {
		_, err := ParseEnvFile(strings.NewReader("OK=1\n"+in+"\n"), "bad.env")
		if err == nil || !strings.Contains(err.Error(), "bad.env:2") {
			t.Errorf("%q: err = %v, want bad.env:2", in, err)
		}
	}
}

func TestRunAsServiceAppliesEnv(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "s.env")
	if err := os.WriteFile(env, []byte("SCHNITZEL_TEST_X=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	t.Setenv(EnvFileVar, env)
	t.Setenv(WorkdirVar, dir)
	t.Setenv("SCHNITZEL_TEST_X", "before")
	var seen, cwd string
	err := RunAsService(context.Background(), func(ctx context.Context) error {
		seen = os.Getenv("SCHNITZEL_TEST_X")
		cwd, _ = os.Getwd()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if seen != "from-file" || (cwd != dir && cwd != real) {
		t.Errorf("env %q, cwd %q", seen, cwd)
	}
	// A missing env file is optional; a missing workdir is an error.
	t.Setenv(EnvFileVar, filepath.Join(dir, "absent.env"))
	t.Setenv(WorkdirVar, filepath.Join(dir, "absent"))
	if err := RunAsService(context.Background(), func(context.Context) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), WorkdirVar) {
		t.Errorf("err = %v", err)
	}
}
