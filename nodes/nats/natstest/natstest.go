// Package natstest runs a real NATS server with JetStream in-process, on
// loopback, for tests, benchmarks and `schnitzel nats serve`-like tools.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options is what a test chooses; zero values pick a random port and no
// authentication.
type Options struct {
	Port     int    // 0: a free random port
	StoreDir string // JetStream file store; required
	Token    string // required client token, if set
	User     string // with Password: required user
	Password string
	Name     string
	// Cluster: the cluster listen port and the routes to the others.
	ClusterName string
	ClusterPort int
	Routes      []string
}

// Run starts a server and waits until it accepts clients.
func Run(o Options) (*server.Server, error) {
	so := &server.Options{
		ServerName: o.Name,
		Host:       "127.0.0.1",
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		// A test server must not grab the machine: a few MB of memory
		// store, file store limited by the disk only.
		JetStreamMaxMemory: 256 << 20,
		Authorization:      o.Token,
		Username:           o.User,
		Password:           o.Password,
	}
	if so.Port == 0 {
		so.Port = -1
	}
	if o.ClusterName != "" {
		so.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: "127.0.0.1", Port: o.ClusterPort}
		so.Routes = server.RoutesFromStr(joinRoutes(o.Routes))
	}
	s, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server on port %d not ready after 10s", o.Port)
	}
	return s, nil
}

func joinRoutes(rs []string) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += ","
		}
		out += r
	}
	return out
}

// Server is a test's server, restartable on the same port and store.
type Server struct {
	*server.Server
	Opts Options
	t    testing.TB
}

// Start runs a server for t in dir (t.TempDir() if empty), shut down at
// cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	s, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	o.Port = Port(s)
	srv := &Server{Server: s, Opts: o, t: t}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// URL is the client URL (nats://127.0.0.1:port).
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.Opts.Port) }

// Restart shuts the server down and starts a new one on the same port and
// store directory, as after a crash and a supervisor's restart.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.StartAgain()
}

// Stop shuts the server down (StartAgain brings it back).
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// StartAgain starts a server on the same port and store.
func (s *Server) StartAgain() {
	s.t.Helper()
	ns, err := Run(s.Opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.Server = ns
}

// Port is the client port a running server listens on.
func Port(s *server.Server) int {
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		return 0
	}
	return a.Port
}

// FreePort returns a loopback port free at the time of the call (for a
// cluster's route ports, which must be known before the servers start).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Client connects a plain nats.go client to url for a test's own checks
// and setup; the connection closes when the test ends.
func Client(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
