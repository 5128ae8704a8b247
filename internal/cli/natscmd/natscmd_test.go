package natscmd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var urlRE = regexp.MustCompile(`listening on (nats://\S+),`)

func TestServeRunsJetStream(t *testing.T) {
	store := t.TempDir()
	cmd := Command()
	var errb syncBuf
	cmd.SetErr(&errb)
	cmd.SetOut(&errb)
	cmd.SetArgs([]string{"serve", "--listen", "127.0.0.1:0", "--store", store, "--domain", "edge"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var url string
	poll.Until(t, 30*time.Second, "the server's URL on stderr", func() bool {
		m := urlRE.FindStringSubmatch(errb.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	if !strings.Contains(errb.String(), "domain edge") {
		t.Errorf("stderr %q does not name the domain", errb.String())
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.NewWithDomain(nc, "edge")
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if _, err := js.CreateStream(cctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(cctx, "s.x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}
}

func TestServeFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "nohost"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:99999"}, "bad port"},
		{[]string{"--creds", "x.creds"}, "--leaf-remote"},
		{[]string{"--leaf-remote", "://user:secret@"}, "--leaf-remote"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := Command()
			var errb syncBuf
			cmd.SetErr(&errb)
			cmd.SetOut(&errb)
			cmd.SetArgs(append([]string{"serve", "--store", t.TempDir()}, tc.args...))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to name %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the password leaked: %v", err)
			}
		})
	}
}
