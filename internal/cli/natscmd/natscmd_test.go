package natscmd

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"github.com/schnitzel-stream/schnitzel/nodes/nats/natstest"
)

var urlRE = regexp.MustCompile(`listening on (nats://\S+),`)

func TestServeRunsJetStream(t *testing.T) {
	store := t.TempDir()
	cmd := Command()
	var errb logbuf.Buffer
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

// startServe runs `nats serve args...` until the test ends and returns
// its client URL and stderr.
func startServe(t *testing.T, args ...string) (string, *logbuf.Buffer) {
	t.Helper()
	cmd := Command()
	errb := &logbuf.Buffer{}
	cmd.SetErr(errb)
	cmd.SetOut(errb)
	cmd.SetArgs(append([]string{"serve", "--store", t.TempDir()}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %v: %v", args, err)
		}
	})
	var url string
	poll.Until(t, 30*time.Second, "the server's URL on stderr", func() bool {
		m := urlRE.FindStringSubmatch(errb.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	return url, errb
}

var leafRE = regexp.MustCompile(`leaf listen (nats-leaf://\S+?),?\s`)

// TestServeHubSourcesEdge: an edge server (domain edge) joins a hub that
// listens for leaves; a message stored in the edge's local stream shows up
// in the hub stream that --source makes.
func TestServeHubSourcesEdge(t *testing.T) {
	pw := secretFile(t, "s3cret-leaf")
	hubURL, hubErr := startServe(t, "--listen", "127.0.0.1:0", "--domain", "hub", "--leaf-listen", "127.0.0.1:0", "--source", "HUB_EVENTS=EDGE_EVENTS@edge",
		"--leaf-user", "edge", "--leaf-password-file", pw)
	m := leafRE.FindStringSubmatch(hubErr.String())
	if m == nil {
		t.Fatalf("hub stderr %q names no leaf listener", hubErr.String())
	}
	if !strings.Contains(hubErr.String(), "stream HUB_EVENTS sources EDGE_EVENTS@edge") {
		t.Errorf("hub stderr %q does not name the source", hubErr.String())
	}
	edgeURL, edgeErr := startServe(t, "--listen", "127.0.0.1:0", "--domain", "edge", "--leaf-remote", m[1], "--leaf-user", "edge", "--leaf-password-file", pw)
	if strings.Contains(hubErr.String()+edgeErr.String(), "s3cret-leaf") {
		t.Error("the leaf password is on stderr")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	enc, err := nats.Connect(edgeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	// A client of the edge server uses the plain JetStream API: the edge's own domain.
	ejs, _ := jetstream.New(enc)
	if _, err := ejs.CreateStream(ctx, jetstream.StreamConfig{Name: "EDGE_EVENTS", Subjects: []string{"edge.events.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := ejs.Publish(ctx, "edge.events.x", []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	hnc, err := nats.Connect(hubURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hnc.Close()
	hjs, _ := jetstream.New(hnc)
	hubMsgs := func() uint64 {
		s, err := hjs.Stream(ctx, "HUB_EVENTS")
		if err != nil {
			return 0
		}
		return s.CachedInfo().State.Msgs
	}
	poll.Until(t, 30*time.Second, "the hub stream to source the edge's 10 messages", func() bool { return hubMsgs() == 10 })
	// The edge stream was not created on the hub: the domains stayed apart.
	if _, err := hjs.Stream(ctx, "EDGE_EVENTS"); err == nil {
		t.Error("EDGE_EVENTS exists in the hub's domain too")
	}
}

// TestServeSourceAddedOnRestart: a hub restarted on its store with one more
// --source keeps its stream and gains the source.
func TestServeSourceAddedOnRestart(t *testing.T) {
	store := t.TempDir()
	t.Run("first", func(t *testing.T) {
		startServe(t, "--store", store, "--listen", "127.0.0.1:0", "--domain", "hub", "--source", "HUB=EDGE@e1")
	})
	url, _ := startServe(t, "--store", store, "--listen", "127.0.0.1:0", "--domain", "hub", "--source", "HUB=EDGE@e1", "--source", "HUB=EDGE@e2", "--source", "OTHER=X@e1")
	_, js := natstest.Client(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for _, name := range []string{"HUB", "OTHER"} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		for _, src := range s.CachedInfo().Config.Sources {
			got = append(got, name+"<"+src.Name+"@"+src.External.APIPrefix)
		}
	}
	want := "HUB<EDGE@$JS.e1.API HUB<EDGE@$JS.e2.API OTHER<X@$JS.e1.API"
	if strings.Join(got, " ") != want {
		t.Errorf("sources %v, want %s", got, want)
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
		{[]string{"--leaf-listen", "7422"}, "--leaf-listen"},
		{[]string{"--leaf-listen", "127.0.0.1:70000"}, "bad port"},
		{[]string{"--source", "HUB=EDGE@edge"}, "needs --domain"},
		{[]string{"--domain", "hub", "--source", "HUB=EDGE"}, "HUB_STREAM=EDGE_STREAM@EDGE_DOMAIN"},
		{[]string{"--domain", "hub", "--source", "HUB.X=EDGE@edge"}, "without dots"},
		{[]string{"--domain", "hub", "--source", "=EDGE@edge"}, "--source"},
		{[]string{"--domain", "hub", "--source", "HUB=EDGE@hub"}, "own --domain"},
		{[]string{"--listen", "0.0.0.0:0"}, "--listen 0.0.0.0:0 is reachable beyond this machine: set --user"},
		{[]string{"--listen", ":0"}, "reachable beyond this machine"},
		{[]string{"--leaf-listen", "0.0.0.0:0"}, "--leaf-listen 0.0.0.0:0 is reachable beyond this machine: set --leaf-user"},
		{[]string{"--user", "app"}, "--user and --password-file go together"},
		{[]string{"--user", "app", "--password-file", "/nonexistent/pw"}, "--password-file: open /nonexistent/pw"},
		{[]string{"--leaf-user", "edge", "--leaf-password-file", "/nonexistent/pw"}, "set --leaf-listen (hub) or --leaf-remote (edge) too"},
		{[]string{"--leaf-remote", "nats-leaf://u:secret@hub:7422", "--leaf-user", "edge", "--leaf-password-file", "PW"}, "credentials already"},
		{[]string{"--max-store", "2 bushels"}, `--max-store "2 bushels": want a size`},
		{[]string{"--max-mem", "10KB"}, "--max-mem \"10KB\": must be between 1MiB"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := Command()
			var errb logbuf.Buffer
			cmd.SetErr(&errb)
			cmd.SetOut(&errb)
			pw := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := slices.Clone(tc.args)
			for i, a := range args {
				if a == "PW" {
					args[i] = pw
				}
			}
			cmd.SetArgs(append([]string{"serve", "--store", t.TempDir()}, args...))
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

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"2GB", 2e9, false},
		{"2gb", 2e9, false},
		{"512MiB", 512 << 20, false},
		{"1.5GiB", 3 << 29, false},
		{" 64 MiB ", 64 << 20, false},
		{"1048576", 1 << 20, false},
		{"10M", 10e6, false},
		{"1KB", 0, true}, // below 1 MiB
		{"-5GB", 0, true},
		{"lots", 0, true},
		{"NaNGB", 0, true},
		{"", 0, true},
		{"99999999EB", 0, true},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestServeMaxStore: --max-store bounds the JetStream file store: a stream
// asking for more than the limit is refused, one within it is made.
func TestServeMaxStore(t *testing.T) {
	url, errb := startServe(t, "--listen", "127.0.0.1:0", "--max-store", "8MiB", "--max-mem", "4MiB")
	if !strings.Contains(errb.String(), "max store 8388608 bytes, max memory 4194304 bytes") {
		t.Errorf("the limits are not on stderr: %s", errb.String())
	}
	_, js := natstest.Client(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BIG", Subjects: []string{"big.>"}, MaxBytes: 64 << 20}); err == nil {
		t.Error("a 64 MiB stream was made under --max-store 8MiB")
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"small.>"}, MaxBytes: 4 << 20}); err != nil {
		t.Errorf("a 4 MiB stream under --max-store 8MiB: %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MEM", Subjects: []string{"mem.>"}, Storage: jetstream.MemoryStorage, MaxBytes: 16 << 20}); err == nil {
		t.Error("a 16 MiB memory stream was made under --max-mem 4MiB")
	}
}

func secretFile(t *testing.T, pw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeClientAuth: with --user, a client without the password (or
// with a wrong one) is refused; one with it gets JetStream.
func TestServeClientAuth(t *testing.T) {
	url, _ := startServe(t, "--listen", "127.0.0.1:0", "--user", "app", "--password-file", secretFile(t, "right-pw"))
	for _, opts := range [][]nats.Option{nil, {nats.UserInfo("app", "wrong")}, {nats.UserInfo("other", "right-pw")}} {
		if nc, err := nats.Connect(url, opts...); err == nil {
			nc.Close()
			t.Errorf("a client with options %d connected without the right credentials", len(opts))
		}
	}
	nc, err := nats.Connect(url, nats.UserInfo("app", "right-pw"))
	if err != nil {
		t.Fatalf("the right credentials: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
}

// TestServeLeafAuth speaks the leaf protocol to the hub's leaf listener as
// an attacker would: a CONNECT without credentials, or with a wrong
// password, is answered with an authorization violation.
func TestServeLeafAuth(t *testing.T) {
	_, hubErr := startServe(t, "--listen", "127.0.0.1:0", "--domain", "hub", "--leaf-listen", "127.0.0.1:0",
		"--leaf-user", "edge", "--leaf-password-file", secretFile(t, "leaf-pw"))
	m := leafRE.FindStringSubmatch(hubErr.String())
	if m == nil {
		t.Fatalf("hub stderr %q names no leaf listener", hubErr.String())
	}
	addr := strings.TrimPrefix(m[1], "nats-leaf://")
	for _, connect := range []string{`{}`, `{"user":"edge","pass":"wrong"}`, `{"user":"nobody","pass":"leaf-pw"}`} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if info, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
			t.Fatalf("leaf listener greeted with %q, %v", info, err)
		}
		if _, err := c.Write([]byte("CONNECT " + connect + "\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		var got string
		for {
			line, err := r.ReadString('\n')
			got += line
			if err != nil || strings.HasPrefix(line, "-ERR") || strings.HasPrefix(line, "PONG") {
				break
			}
		}
		c.Close()
		if !strings.Contains(got, "Authorization Violation") {
			t.Errorf("CONNECT %s: the hub answered %q, want an authorization violation", connect, got)
		}
	}
}
