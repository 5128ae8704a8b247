// Package natscmd implements `schnitzel nats serve`: a NATS server with
// JetStream in this process, for an edge box that has no broker of its own
// (the JetStream nodes connect to it; a leaf remote links it to a hub).
package natscmd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// Command returns the nats command group.
func Command() *cobra.Command {
	g := &cobra.Command{
		Use:   "nats",
		Short: "Run an embedded NATS server with JetStream",
	}
	g.AddCommand(serveCommand())
	return g
}

type serveOpts struct {
	listen, store, domain, leafRemote, creds string
}

func serveCommand() *cobra.Command {
	var o serveOpts
	cmd := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:4222] [--store DIR] [--domain NAME] [--leaf-remote URL] [--creds F]",
		Short: "Run a NATS server with JetStream (file store) until SIGINT/SIGTERM",
		Long: `Run a NATS server (nats-server v2.15, embedded) with JetStream on file storage.
The JetStream nodes of a graph connect to it with url: nats://<listen>. With
--leaf-remote the server joins a hub as a leaf node (--creds authenticates it),
and --domain names its JetStream domain so that hub and edge streams do not mix.
Port 0 picks a free port; the URL is printed on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:4222", "client listen address host:port")
	f.StringVar(&o.store, "store", "nats-store", "JetStream store directory")
	f.StringVar(&o.domain, "domain", "", "JetStream domain")
	f.StringVar(&o.leafRemote, "leaf-remote", "", "hub URL to connect to as a leaf node (nats-leaf://host:7422)")
	f.StringVar(&o.creds, "creds", "", "credentials file for the leaf connection")
	return cmd
}

// options turns the flags into server options.
func options(o serveOpts) (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(o.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", o.listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--listen %q: bad port", o.listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if o.store == "" {
		return nil, fmt.Errorf("--store must name a directory")
	}
	so := &server.Options{
		Host: host, Port: port, JetStream: true, StoreDir: o.store, JetStreamDomain: o.domain,
		NoSigs: true, Logtime: true,
	}
	if o.creds != "" && o.leafRemote == "" {
		return nil, fmt.Errorf("--creds is for the leaf connection: set --leaf-remote too")
	}
	if o.leafRemote != "" {
		u, err := url.Parse(o.leafRemote)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("--leaf-remote: not a URL such as nats-leaf://hub:7422 (value not shown: it may hold credentials)")
		}
		so.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, Credentials: o.creds}}
	}
	return so, nil
}

func serve(ctx context.Context, cmd *cobra.Command, o serveOpts) error {
	so, err := options(o)
	if err != nil {
		return exitcode.New(exitcode.Usage, err)
	}
	if err := os.MkdirAll(o.store, 0o750); err != nil {
		return fmt.Errorf("--store %s: %w", o.store, err)
	}
	s, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	s.ConfigureLogger()
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("nats server on %s not ready after 30s", o.listen)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "nats serve: listening on %s, JetStream store %s", s.ClientURL(), o.store)
	if o.domain != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), ", domain %s", o.domain)
	}
	if o.leafRemote != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), ", leaf of %s", redact.URL(o.leafRemote))
	}
	fmt.Fprintln(cmd.ErrOrStderr())
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
