package mqtt

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/schnitzel-stream/schnitzel/plugin"
)

// ConnConfig is the connection part of both MQTT configs: broker, session,
// credentials, TLS and the reconnect schedule. Its keys are inline.
type ConnConfig struct {
	URL               string         `yaml:"url" required:"true" example:"tcp://127.0.0.1:1883|ssl://broker.local:8883|ws://broker.local:9001/mqtt" doc:"Broker URL: tcp:// (or mqtt://), ssl:// (tls://, mqtts://), ws:// or wss://. Without a port: 1883, 8883 with TLS. Userinfo in the URL is used as username/password when those keys are empty (and masked in logs)."`
	ClientID          string         `yaml:"client_id" doc:"MQTT client id. Empty: generated from host name, graph directory and node id, so it stays the same across restarts (set it explicitly for a persistent session, clean_start: false). Two clients with the same id knock each other off the broker."`
	Username          string         `yaml:"username" doc:"User name for the broker."`
	Password          string         `yaml:"password" secret:"true" doc:"Password for the broker."`
	QoS               int64          `yaml:"qos" enum:"0,1,2" doc:"Quality of service: 0 at most once, 1 at least once, 2 exactly once (to the broker)."`
	CleanStart        bool           `yaml:"clean_start" doc:"Start a clean session. false: the broker keeps the session (subscriptions, unacknowledged messages) across disconnects and restarts, for a fixed client_id."`
	KeepaliveSec      plugin.Seconds `yaml:"keepalive_sec" doc:"MQTT keepalive interval; a dead connection is noticed after about 1.5 times this."`
	ConnectTimeoutSec plugin.Seconds `yaml:"connect_timeout_sec" doc:"Deadline for one connection attempt (dial, TLS, CONNACK, SUBACK)."`
	TLSCAFile         string         `yaml:"tls_ca_file" doc:"PEM file of CA certificates to verify the broker with (default: the system's)."`
	TLSCertFile       string         `yaml:"tls_cert_file" doc:"PEM client certificate (with tls_key_file) for mutual TLS."`
	TLSKeyFile        string         `yaml:"tls_key_file" doc:"PEM private key of tls_cert_file."`
	TLSInsecure       bool           `yaml:"tls_insecure_skip_verify" advanced:"true" doc:"Do not verify the broker's certificate (tests only)."`
	ReconnectMinSec   plugin.Seconds `yaml:"reconnect_min_sec" advanced:"true" doc:"Wait before the first reconnect attempt; doubles per failed attempt up to reconnect_max_sec, with jitter (a draw in [d/2, d]). Reconnects never give up."`
	ReconnectMaxSec   plugin.Seconds `yaml:"reconnect_max_sec" advanced:"true" doc:"Upper bound of the reconnect wait."`
}

var connDefaults = ConnConfig{
	QoS: 1, CleanStart: true, KeepaliveSec: 30, ConnectTimeoutSec: 10,
	ReconnectMinSec: 0.5, ReconnectMaxSec: 30,
}

func (c *ConnConfig) validate() error {
	var errs []error
	if _, err := brokerURL(c.URL); err != nil {
		errs = append(errs, plugin.Errorf("url", "%v", err))
	}
	if c.QoS < 0 || c.QoS > 2 {
		errs = append(errs, plugin.Errorf("qos", "must be 0, 1 or 2, got %d", c.QoS))
	}
	if len(c.ClientID) > 65535 {
		errs = append(errs, plugin.Errorf("client_id", "longer than 65535 bytes"))
	}
	secs := []struct {
		key    string
		v      plugin.Seconds
		zeroOK bool
	}{
		{"keepalive_sec", c.KeepaliveSec, true},
		{"connect_timeout_sec", c.ConnectTimeoutSec, false},
		{"reconnect_min_sec", c.ReconnectMinSec, false},
		{"reconnect_max_sec", c.ReconnectMaxSec, false},
	}
	for _, s := range secs {
		if s.v < 0 || (!s.zeroOK && s.v == 0) || s.v > 86400 {
			errs = append(errs, plugin.Errorf(s.key, "must be a number of seconds in (0, 86400], got %v", float64(s.v)))
		}
	}
	if c.KeepaliveSec > 65535 {
		errs = append(errs, plugin.Errorf("keepalive_sec", "at most 65535 (MQTT's 16-bit field), got %v", float64(c.KeepaliveSec)))
	}
	if c.ReconnectMaxSec < c.ReconnectMinSec {
		errs = append(errs, plugin.Errorf("reconnect_max_sec", "must be >= reconnect_min_sec (%v), got %v", float64(c.ReconnectMinSec), float64(c.ReconnectMaxSec)))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, plugin.Errorf("tls_cert_file", "tls_cert_file and tls_key_file go together"))
	}
	return errors.Join(errs...)
}

// brokerURL parses and checks url, adding the scheme's default port.
func brokerURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %v", maskErr(err, raw))
	}
	port := ""
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt":
		port = "1883"
	case "ssl", "tls", "mqtts":
		port = "8883"
	case "ws", "wss":
	default:
		return nil, fmt.Errorf("scheme %q is not one of tcp, mqtt, ssl, tls, mqtts, ws, wss", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("has no host")
	}
	if port != "" && u.Port() == "" {
		u.Host += ":" + port
	}
	return u, nil
}

// maskErr removes the raw URL (which may hold a password) from a parse error.
func maskErr(err error, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), raw, "***")
}

func (c *ConnConfig) secure(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "ssl", "tls", "mqtts", "wss":
		return true
	}
	return false
}

// tlsConfig reads the TLS files; nil when the URL is plain and no TLS key is set.
func (c *ConnConfig) tlsConfig(u *url.URL) (*tls.Config, error) {
	if !c.secure(u) && c.TLSCAFile == "" && c.TLSCertFile == "" && !c.TLSInsecure {
		return nil, nil
	}
	t := &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: c.TLSInsecure, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in, documented
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %s: no PEM certificate in it", c.TLSCAFile)
		}
		t.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file/tls_key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// defaultClientID is stable for one node of one graph on one host, and
// within the 23 bytes every MQTT 3.1.1 broker must accept.
func defaultClientID(env plugin.Env) string {
	host, _ := os.Hostname()
	h := sha256.Sum256([]byte(host + "\x00" + env.GraphDir + "\x00" + env.NodeID + "\x00" + env.Plugin))
	return "schnitzel-" + hex.EncodeToString(h[:6])
}

// checkFilter checks an MQTT topic filter: + and # only as whole levels, #
// only last.
func checkFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("topic filter %q: # must be the last level", f)
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("topic filter %q: + and # must fill a whole level", f)
		}
	}
	if strings.ContainsRune(f, 0) {
		return fmt.Errorf("topic filter %q holds a NUL character", f)
	}
	return nil
}
