package servecmd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

func code(err error) int {
	var ee *exitcode.Error
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestCheckListen(t *testing.T) {
	cases := []struct {
		addr           string
		tls, tokenFile bool
		want           int // exit code
		msg            string
	}{
		{"127.0.0.1:18700", false, false, 0, ""},
		{"localhost:0", false, false, 0, ""},
		{"[::1]:18700", false, false, 0, ""},
		{"127.9.9.9:1", false, false, 0, ""},
		{"0.0.0.0:18700", false, false, 2, "--tls-cert F --tls-key F and --token-file F"},
		{":18700", false, false, 2, "every interface"},
		{"[::]:18700", true, false, 2, "--token-file"},
		{"192.168.1.5:18700", false, true, 2, "--tls-cert"},
		{"192.168.1.5:18700", true, true, 0, ""},
		{"localhost.evil.example:1", false, false, 2, "not loopback"},
		{"127.0.0.1", false, false, 2, "HOST:PORT"},
		{"127.0.0.1:99999", false, false, 2, "0..65535"},
	}
	for _, c := range cases {
		err := checkListen(c.addr, c.tls, c.tokenFile)
		if code(err) != c.want || (c.msg != "" && !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("checkListen(%q, tls %v, token file %v) = %v, want exit %d with %q", c.addr, c.tls, c.tokenFile, err, c.want, c.msg)
		}
		if c.want == 2 && strings.Contains(c.msg, "tls") && !strings.Contains(err.Error(), "fix:") {
			t.Errorf("%q: no fix in %v", c.addr, err)
		}
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	tok, created, err := loadToken(p, true)
	if err != nil || !created || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(tok) {
		t.Fatalf("generate: %q %v %v", tok, created, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	again, created, err := loadToken(p, true)
	if err != nil || created || again != tok {
		t.Errorf("reuse: %q %v %v (want %q)", again, created, err, tok)
	}
	if _, _, err := loadToken(filepath.Join(dir, "missing"), false); code(err) != 2 {
		t.Errorf("a missing --token-file: %v", err)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, _, err := loadToken(short, false); code(err) != 2 || !strings.Contains(err.Error(), "16 characters") {
		t.Errorf("a short token: %v", err)
	}
	if w := tokenModeWarning(p); w != "" {
		t.Errorf("0600 warned: %s", w)
	}
	os.Chmod(p, 0o640)
	if w := tokenModeWarning(p); !strings.Contains(w, p) || !strings.Contains(w, "chmod 600") {
		t.Errorf("0640 warning: %q", w)
	}
}

// TestServeInProcess runs the command until its context ends: it serves
// the API on the port it printed, never prints the token, and returns nil
// after a graceful stop (the lock released: a second run starts).
func TestServeInProcess(t *testing.T) {
	dir := t.TempDir()
	for round := range 2 {
		var stderr logbuf.Buffer
		cmd := Command(Options{Registry: plugin.NewRegistry(), Stderr: &stderr, Getenv: func(string) string { return "" }})
		cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--graphs", filepath.Join(dir, "g"), "--state", filepath.Join(dir, "s")})
		cmd.SetErr(&stderr)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cmd.ExecuteContext(ctx) }()
		var url string
		poll.Until(t, 10*time.Second, "the serving line", func() bool {
			m := regexp.MustCompile(`serving on (\S+)`).FindStringSubmatch(stderr.String())
			if m != nil {
				url = m[1]
			}
			return m != nil
		})
		resp, err := http.Get(url + "/api/v1/health")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("round %d: health: %v %v", round, resp, err)
		}
		resp.Body.Close()
		tok, _ := os.ReadFile(filepath.Join(dir, "s", "token"))
		if len(tok) < 64 || strings.Contains(stderr.String(), strings.TrimSpace(string(tok))) {
			t.Errorf("round %d: token %q printed or missing:\n%s", round, tok, stderr.String())
		}
		if round == 0 && !strings.Contains(stderr.String(), "token file created") {
			t.Errorf("first start does not say it created the token file:\n%s", stderr.String())
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("serve did not stop after its context ended")
		}
		if c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
			c.Close()
			t.Errorf("round %d: still accepting after the stop", round)
		}
	}
	audit, _ := os.ReadFile(filepath.Join(dir, "s", "audit.jsonl"))
	if n := strings.Count(string(audit), `"serve.start"`); n != 2 || strings.Count(string(audit), `"serve.stop"`) != 2 {
		t.Errorf("audit has %d serve.start lines:\n%s", n, audit)
	}
}
