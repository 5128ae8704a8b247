// Package natscmd implements `schnitzel nats serve`: a NATS server with
// JetStream in this process, for an edge box that has no broker of its own
// (the JetStream nodes connect to it; a leaf remote links it to a hub).
package natscmd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/netaddr"
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
	listen, store, domain, leafRemote, creds, leafListen string
	sources                                              []string
	maxStore, maxMem                                     string // sizes: "" = the server's default
	leafUser, leafPasswordFile                           string
	user, passwordFile                                   string // clients' credentials
}

func serveCommand() *cobra.Command {
	var o serveOpts
	cmd := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:4222] [--user U --password-file F] [--store DIR] [--domain NAME] [--leaf-remote URL] [--creds F] [--leaf-listen HOST:PORT] [--leaf-user U --leaf-password-file F] [--source HUB=EDGE@DOMAIN]... [--max-store SIZE] [--max-mem SIZE]",
		Short: "Run a NATS server with JetStream (file store) until SIGINT/SIGTERM",
		Long: `Run a NATS server (nats-server v2.15, embedded) with JetStream on file storage.
The JetStream nodes of a graph connect to it with url: nats://<listen>. With
--leaf-remote the server joins a hub as a leaf node (--creds authenticates it),
and --domain names its JetStream domain so that hub and edge streams do not mix.
On the hub, --leaf-listen accepts leaf connections, and --source HUB=EDGE@DOMAIN
makes the hub stream HUB (created, or updated, at start) source stream EDGE of
the leaf whose domain is DOMAIN: the edge publishes locally, and the hub catches
up whenever the link is up. Repeat --source for several edges.
Port 0 picks a free port; the URL is printed on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:4222", "client listen address host:port; beyond loopback it needs --user")
	f.StringVar(&o.store, "store", "nats-store", "JetStream store directory")
	f.StringVar(&o.domain, "domain", "", "JetStream domain")
	f.StringVar(&o.leafRemote, "leaf-remote", "", "hub URL to connect to as a leaf node (nats-leaf://host:7422)")
	f.StringVar(&o.creds, "creds", "", "credentials file for the leaf connection")
	f.StringVar(&o.leafListen, "leaf-listen", "", "accept leaf node connections on host:port (hub side, e.g. 127.0.0.1:7422); beyond loopback it needs --leaf-user")
	f.StringVar(&o.user, "user", "", "user every client must present (the graphs' nodes: user and password in their config); beyond loopback --listen needs it")
	f.StringVar(&o.passwordFile, "password-file", "", "file holding --user's password")
	f.StringVar(&o.leafUser, "leaf-user", "", "user of the leaf connection: the hub requires it of its leaves (--leaf-listen), an edge presents it (--leaf-remote)")
	f.StringVar(&o.leafPasswordFile, "leaf-password-file", "", "file holding --leaf-user's password (kept off the command line, which other users can read)")
	f.StringArrayVar(&o.sources, "source", nil, "HUB=EDGE@DOMAIN: hub stream HUB sources stream EDGE of JetStream domain DOMAIN (repeatable)")
	f.StringVar(&o.maxStore, "max-store", "", "JetStream file store limit, e.g. 2GB or 512MiB (default: nats-server's, 75% of the disk's free space)")
	f.StringVar(&o.maxMem, "max-mem", "", "JetStream memory store limit, e.g. 256MiB (default: nats-server's, 75% of RAM)")
	return cmd
}

// hostPort splits a listen flag; port 0 becomes the server's random port.
func hostPort(flag, v string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", flag, v, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%s %q: bad port", flag, v)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// leafPassword reads the leaf connection's password, when --leaf-user is
// set; it is for a leaf listener or remote only.
func leafPassword(o serveOpts) (string, error) {
	if (o.leafUser != "" || o.leafPasswordFile != "") && o.leafListen == "" && o.leafRemote == "" {
		return "", fmt.Errorf("--leaf-user is for the leaf connection: set --leaf-listen (hub) or --leaf-remote (edge) too")
	}
	return secretPair("--leaf-user", o.leafUser, "--leaf-password-file", o.leafPasswordFile)
}

// secretPair checks that a user flag and its password-file flag go
// together and reads the password: the file's first line (a trailing
// newline is not part of it), kept off the command line that every user
// of the machine can read.
func secretPair(userFlag, user, fileFlag, file string) (string, error) {
	switch {
	case user == "" && file == "":
		return "", nil
	case user == "" || file == "":
		return "", fmt.Errorf("%s and %s go together", userFlag, fileFlag)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", fileFlag, err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	if pw = strings.TrimRight(pw, "\r"); pw == "" {
		return "", fmt.Errorf("%s %s: the first line (the password) is empty", fileFlag, file)
	}
	return pw, nil
}

// sizeUnits are the suffixes parseSize takes: decimal (KB = 1000) and
// binary (KiB = 1024), case-insensitive.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}, {"b", 1},
}

// parseSize reads a byte size: a whole number of bytes, or a number with
// a unit such as 2GB, 1.5GiB or 512MiB. The limit must be at least 1 MiB:
// a smaller JetStream store holds nothing useful.
func parseSize(v string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a size such as 2GB, 512MiB or a number of bytes")
	}
	n := f * float64(mult)
	if n < 1<<20 || n > math.MaxInt64/2 {
		return 0, fmt.Errorf("must be between 1MiB and 4EiB")
	}
	return int64(n), nil
}

// streamSource is one --source: hub stream Hub sources Edge in Domain.
type streamSource struct{ Hub, Edge, Domain string }

// validName reports a stream or domain name JetStream takes.
func validName(s string) bool { return s != "" && !strings.ContainsAny(s, " .*>\t\r\n@=") }

// parseSources parses --source values; sourcing from our own domain needs
// no leaf link and is refused, since it is most likely a typo.
func parseSources(vals []string, domain string) ([]streamSource, error) {
	var out []streamSource
	for _, v := range vals {
		hub, rest, ok1 := strings.Cut(v, "=")
		edge, dom, ok2 := strings.Cut(rest, "@")
		if !ok1 || !ok2 || !validName(hub) || !validName(edge) || !validName(dom) {
			return nil, fmt.Errorf("--source %q: want HUB_STREAM=EDGE_STREAM@EDGE_DOMAIN, names without dots, wildcards or spaces (e.g. HUB_EVENTS=EDGE_EVENTS@edge)", v)
		}
		if dom == domain {
			return nil, fmt.Errorf("--source %q: domain %q is this server's own --domain; name the edge's domain", v, dom)
		}
		out = append(out, streamSource{Hub: hub, Edge: edge, Domain: dom})
	}
	return out, nil
}

// options turns the flags into server options.
func options(o serveOpts) (*server.Options, error) {
	host, port, err := hostPort("--listen", o.listen)
	if err != nil {
		return nil, err
	}
	if o.store == "" {
		return nil, fmt.Errorf("--store must name a directory")
	}
	so := &server.Options{
		Host: host, Port: port, JetStream: true, StoreDir: o.store, JetStreamDomain: o.domain,
		NoSigs: true, Logtime: true,
	}
	clientPassword, err := secretPair("--user", o.user, "--password-file", o.passwordFile)
	if err != nil {
		return nil, err
	}
	// A client can read and delete every stream: beyond loopback only
	// known ones may connect.
	if o.user == "" && !netaddr.Loopback(host) {
		return nil, fmt.Errorf("--listen %s is reachable beyond this machine: set --user and --password-file so that only your graphs can connect", o.listen)
	}
	if o.user != "" {
		so.Username, so.Password = o.user, clientPassword
	}
	for _, l := range []struct {
		flag, v string
		dst     *int64
	}{{"--max-store", o.maxStore, &so.JetStreamMaxStore}, {"--max-mem", o.maxMem, &so.JetStreamMaxMemory}} {
		if l.v == "" {
			continue
		}
		n, err := parseSize(l.v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", l.flag, l.v, err)
		}
		*l.dst = n
	}
	if o.creds != "" && o.leafRemote == "" {
		return nil, fmt.Errorf("--creds is for the leaf connection: set --leaf-remote too")
	}
	password, err := leafPassword(o)
	if err != nil {
		return nil, err
	}
	if o.leafRemote != "" {
		u, err := url.Parse(o.leafRemote)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("--leaf-remote: not a URL such as nats-leaf://hub:7422 (value not shown: it may hold credentials)")
		}
		if o.leafUser != "" {
			if u.User != nil || o.creds != "" {
				return nil, fmt.Errorf("--leaf-user: the leaf connection has credentials already (in the --leaf-remote URL or --creds): give one kind")
			}
			u.User = url.UserPassword(o.leafUser, password)
		}
		so.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, Credentials: o.creds}}
	}
	if o.leafListen != "" {
		h, p, err := hostPort("--leaf-listen", o.leafListen)
		if err != nil {
			return nil, err
		}
		// Whoever joins as a leaf can read and write every stream the hub
		// sources: beyond loopback only known edges may.
		if o.leafUser == "" && !netaddr.Loopback(h) {
			return nil, fmt.Errorf("--leaf-listen %s is reachable beyond this machine: set --leaf-user and --leaf-password-file so that only your edges can join", o.leafListen)
		}
		so.LeafNode.Host, so.LeafNode.Port = h, p
		if o.leafUser != "" {
			so.LeafNode.Username, so.LeafNode.Password = o.leafUser, password
		}
	}
	if len(o.sources) > 0 {
		// A hub stream addresses the edge by its domain, and the edge's
		// domain must differ from ours for JetStream to keep them apart.
		if o.domain == "" {
			return nil, fmt.Errorf("--source needs --domain: the hub's own JetStream domain, different from the edges'")
		}
		if _, err := parseSources(o.sources, o.domain); err != nil {
			return nil, err
		}
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
	srcs, _ := parseSources(o.sources, o.domain) // checked by options
	if err := ensureSources(ctx, s, srcs); err != nil {
		s.Shutdown()
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "nats serve: listening on %s, JetStream store %s", s.ClientURL(), o.store)
	if o.domain != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), ", domain %s", o.domain)
	}
	if o.leafRemote != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), ", leaf of %s", redact.URL(o.leafRemote))
	}
	if so.JetStreamMaxStore > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), ", max store %d bytes", so.JetStreamMaxStore)
	}
	if so.JetStreamMaxMemory > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), ", max memory %d bytes", so.JetStreamMaxMemory)
	}
	if o.leafListen != "" {
		// The server writes the port it picked for 0 back into so.
		fmt.Fprintf(cmd.ErrOrStderr(), ", leaf listen nats-leaf://%s", net.JoinHostPort(so.LeafNode.Host, strconv.Itoa(so.LeafNode.Port)))
	}
	for _, src := range srcs {
		fmt.Fprintf(cmd.ErrOrStderr(), ", stream %s sources %s@%s", src.Hub, src.Edge, src.Domain)
	}
	fmt.Fprintln(cmd.ErrOrStderr())
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

// ensureSources creates each hub stream, or adds the sources it lacks to an
// existing one (a restart with one more --source), through an in-process
// client. The server retries a source whose edge is not connected, so an
// absent edge is no error here.
func ensureSources(ctx context.Context, s *server.Server, srcs []streamSource) error {
	if len(srcs) == 0 {
		return nil
	}
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.Name("schnitzel/nats-serve"))
	if err != nil {
		return fmt.Errorf("--source: in-process client: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("--source: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var order []string
	byHub := map[string][]*jetstream.StreamSource{}
	for _, src := range srcs {
		if _, ok := byHub[src.Hub]; !ok {
			order = append(order, src.Hub)
		}
		byHub[src.Hub] = append(byHub[src.Hub], &jetstream.StreamSource{
			Name:     src.Edge,
			External: &jetstream.ExternalStream{APIPrefix: "$JS." + src.Domain + ".API"},
		})
	}
	for _, hub := range order {
		want := byHub[hub]
		st, err := js.Stream(ctx, hub)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: hub, Storage: jetstream.FileStorage, Sources: want}); err != nil {
				return fmt.Errorf("--source: create stream %s: %w", hub, err)
			}
			continue
		case err != nil:
			return fmt.Errorf("--source: stream %s: %w", hub, err)
		}
		cfg := st.CachedInfo().Config
		added := false
		for _, w := range want {
			if !slices.ContainsFunc(cfg.Sources, func(h *jetstream.StreamSource) bool {
				return h.Name == w.Name && h.External != nil && h.External.APIPrefix == w.External.APIPrefix
			}) {
				cfg.Sources = append(cfg.Sources, w)
				added = true
			}
		}
		if added {
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("--source: add sources to stream %s: %w", hub, err)
			}
		}
	}
	return nil
}
