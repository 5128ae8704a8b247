package natsnodes

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// ConnConfig is the connection part every NATS node shares (yaml inline).
type ConnConfig struct {
	URL              string         `yaml:"url" required:"true" secret:"true" example:"nats://127.0.0.1:4222|nats://a:4222,nats://b:4222" doc:"Server URL, or a comma-separated list of a cluster's servers. A user:password@ part is used and masked in logs."`
	Name             string         `yaml:"name" doc:"Client connection name the server shows (monitoring, nats server report); empty: schnitzel/<node id>."`
	CredsFile        string         `yaml:"creds_file" doc:"User credentials file (JWT and NKey seed, as nsc writes it)."`
	NkeyFile         string         `yaml:"nkey_file" doc:"NKey seed file: authenticate with the key pair it holds."`
	Token            string         `yaml:"token" secret:"true" doc:"Authentication token."`
	User             string         `yaml:"user" secret:"true" doc:"User name (with password)."`
	Password         string         `yaml:"password" secret:"true" doc:"Password (with user)."`
	TLSCAFile        string         `yaml:"tls_ca_file" doc:"PEM file of the CAs that sign the server's certificate (enables TLS)."`
	TLSCertFile      string         `yaml:"tls_cert_file" doc:"PEM client certificate for mutual TLS (with tls_key_file)."`
	TLSKeyFile       string         `yaml:"tls_key_file" doc:"PEM private key of tls_cert_file."`
	ReconnectWaitSec plugin.Seconds `yaml:"reconnect_wait_sec" advanced:"true" doc:"Wait between reconnect attempts (plus up to 1 s of jitter, 2 s with TLS). Reconnects never give up; an unreachable server at start is retried too."`
}

var defaultConn = ConnConfig{ReconnectWaitSec: 2}

// Validate checks the connection keys.
func (c *ConnConfig) Validate() error {
	var errs []error
	if strings.TrimSpace(c.URL) == "" {
		errs = append(errs, plugin.Errorf("url", "url must name at least one server (nats://host:4222)"))
	}
	for _, u := range strings.Split(c.URL, ",") {
		if strings.TrimSpace(c.URL) != "" && strings.TrimSpace(u) == "" {
			errs = append(errs, plugin.Errorf("url", "url has an empty entry in its comma list"))
			break
		}
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, plugin.Errorf("user", "user and password go together"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, plugin.Errorf("tls_cert_file", "tls_cert_file and tls_key_file go together"))
	}
	n := 0
	for _, s := range []string{c.CredsFile, c.NkeyFile, c.Token, c.User} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, plugin.Errorf("creds_file", "set one of creds_file, nkey_file, token, user/password"))
	}
	if c.ReconnectWaitSec < 0 {
		errs = append(errs, plugin.Errorf("reconnect_wait_sec", "reconnect_wait_sec must be >= 0"))
	}
	return errors.Join(errs...)
}

// maskedURL is the URL list as logs may show it.
func (c *ConnConfig) maskedURL() string {
	parts := strings.Split(c.URL, ",")
	for i, p := range parts {
		parts[i] = redact.URL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// connStats counts a connection's life: the node's connMetrics counters,
// which its embedded *plugin.Counters reports.
type connStats struct {
	disconnects *plugin.Counter
	reconnects  *plugin.Counter
	asyncErrs   *plugin.Counter
}

// newConnStats takes the connection counters from the node's counters.
func newConnStats(cs *plugin.Counters) connStats {
	return connStats{
		disconnects: cs.Get("disconnects_total"),
		reconnects:  cs.Get("reconnects_total"),
		asyncErrs:   cs.Get("async_errors_total"),
	}
}

// connMetrics are the connection metrics every node declares first.
var connMetrics = []plugin.MetricSpec{
	{Name: "disconnects_total", Help: "Times the connection to the server was lost."},
	{Name: "reconnects_total", Help: "Times the connection was re-established."},
	{Name: "async_errors_total", Help: "Errors the server reported asynchronously (permissions, slow consumer)."},
}

// connect opens a connection that keeps retrying forever: an unreachable
// server at start is not an error (RetryOnFailedConnect), a lost one is
// reconnected with jitter. Wrong credentials are: the server says so on the
// first attempt, and retrying them would only hammer it.
func connect(c ConnConfig, nodeID string, log *slog.Logger, st *connStats) (*nats.Conn, error) {
	name := c.Name
	if name == "" {
		name = "schnitzel/" + nodeID
	}
	masked := c.maskedURL()
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(c.ReconnectWaitSec.Duration()),
		nats.ReconnectJitter(time.Second, 2*time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // our own Close, not a lost connection
			}
			st.disconnects.Add(1)
			if err != nil {
				log.Warn("nats disconnected", "url", masked, "err", err)
			} else {
				log.Info("nats disconnected", "url", masked)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			st.reconnects.Add(1)
			log.Info("nats reconnected", "url", redact.URL(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			st.asyncErrs.Add(1)
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats error", "url", masked, "subject", subj, "err", err)
		}),
	}
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NkeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey_file %s: %w", c.NkeyFile, err)
		}
		opts = append(opts, o)
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %s", masked, redact.Text(err.Error()))
	}
	if err := authError(nc.LastError()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats %s: credentials refused: %w", masked, err)
	}
	return nc, nil
}

// authError returns err when the server refused the credentials.
func authError(err error) error {
	for _, a := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired} {
		if errors.Is(err, a) {
			return err
		}
	}
	return nil
}

// closedErr is the error of a connection the client gave up (the server
// refused the credentials on two attempts in a row).
func closedErr(c ConnConfig, nc *nats.Conn) error {
	cause := nc.LastError()
	if cause == nil {
		cause = nats.ErrConnectionClosed
	}
	return fmt.Errorf("nats %s: connection closed: %w", c.maskedURL(), cause)
}
