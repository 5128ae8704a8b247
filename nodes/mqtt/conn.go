package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// conn owns one paho client and keeps it connected. paho's own reconnect
// is off: it has no jitter and says nothing about why a CONNACK refused
// us, so this loop connects, backs off with jitter, logs each loss and
// attempt (rate-limited) and counts them.
type conn struct {
	node   string
	masked string // the broker URL for logs
	log    *slog.Logger
	cfg    ConnConfig
	client paho.Client
	// onConnect runs after each CONNACK, before the connection counts as
	// up (the source subscribes there); an error drops the connection.
	onConnect func(paho.Client) error

	mu   sync.Mutex
	up   chan struct{} // closed while connected; replaced on loss
	lost chan error    // the connection-lost callback, to the loop

	connStats

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	started  bool

	lostLog, failLog plugin.RateLog
}

// connStats are the node's connMetrics counters, which its embedded
// *plugin.Counters reports; the conn counts into them.
type connStats struct {
	disconnects *plugin.Counter
	reconnects  *plugin.Counter
	connected   *plugin.Counter // gauge: 1 while up, stored by setUp under mu
}

// newConnStats takes the connection counters from the node's counters.
func newConnStats(cs *plugin.Counters) connStats {
	return connStats{
		disconnects: cs.Get("disconnects_total"),
		reconnects:  cs.Get("reconnects_total"),
		connected:   cs.Get("connected"),
	}
}

// newConn builds the paho client; nothing is dialled until start. It
// counts into st.
func newConn(node string, cfg ConnConfig, env plugin.Env, st connStats, tune func(*paho.ClientOptions)) (*conn, error) {
	u, err := brokerURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("node %q: url: %w", node, err)
	}
	c := &conn{
		node: node, masked: redact.URL(cfg.URL), log: env.Logger, cfg: cfg,
		up: make(chan struct{}), lost: make(chan error, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		lostLog: plugin.RateLog{Burst: 5}, failLog: plugin.RateLog{Burst: 5},
		connStats: st,
	}
	tlsCfg, err := cfg.tlsConfig(u)
	if err != nil {
		return nil, fmt.Errorf("node %q: %w", node, err)
	}
	id := cfg.ClientID
	if id == "" {
		id = defaultClientID(env)
	}
	o := paho.NewClientOptions().
		AddBroker(brokerString(u)).
		SetClientID(id).
		SetCleanSession(cfg.CleanStart).
		SetKeepAlive(cfg.KeepaliveSec.Duration()).
		SetPingTimeout(cfg.ConnectTimeoutSec.Duration()).
		SetConnectTimeout(cfg.ConnectTimeoutSec.Duration()).
		SetWriteTimeout(cfg.ConnectTimeoutSec.Duration()).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4). // MQTT 3.1.1: paho.mqtt.golang has no MQTT 5
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case c.lost <- err:
			default: // one loss pending is enough
			}
		})
	user, pass := cfg.Username, cfg.Password
	if u.User != nil { // the keys win over the URL's userinfo
		if user == "" {
			user = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && pass == "" {
			pass = p
		}
	}
	if user != "" || pass != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	if tune != nil {
		tune(o)
	}
	c.client = paho.NewClient(o)
	return c, nil
}

// brokerString is u as paho wants it: the default port added, tls:// and
// mqtts:// as ssl://, without userinfo (paho would let it override the
// username and password keys).
func brokerString(u *url.URL) string {
	v := *u
	v.User = nil
	switch v.Scheme {
	case "tls", "mqtts":
		v.Scheme = "ssl"
	case "mqtt":
		v.Scheme = "tcp"
	}
	return v.String()
}

// start launches the connect loop; it does not wait for the broker, so a
// graph starts while the broker is away.
func (c *conn) start() {
	c.started = true
	go c.loop()
}

func (c *conn) loop() {
	defer close(c.done)
	attempt, everUp := 0, false
	for {
		err := c.connectOnce()
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil {
			attempt++
			msg := err.Error()
			wait := plugin.Backoff(attempt, c.cfg.ReconnectMinSec.Duration(), c.cfg.ReconnectMaxSec.Duration(), rand.Float64())
			c.failLog.Warn(c.log, "mqtt: connect failed, retrying", "node", c.node, "url", c.masked, "error", msg, "attempt", attempt, "retry_in", wait.String())
			if !c.wait(wait) {
				return
			}
			continue
		}
		if everUp {
			c.reconnects.Add(1)
			c.log.Info("mqtt: reconnected", "node", c.node, "url", c.masked, "attempts", attempt)
		} else {
			c.log.Info("mqtt: connected", "node", c.node, "url", c.masked)
		}
		everUp, attempt = true, 0
		c.setUp(true)
		select {
		case err := <-c.lost:
			c.setUp(false)
			c.disconnects.Add(1)
			c.lostLog.Warn(c.log, "mqtt: connection lost", "node", c.node, "url", c.masked, "error", fmt.Sprint(err))
		case <-c.stop:
			c.setUp(false)
			c.client.Disconnect(250)
			return
		}
	}
}

// connectOnce makes one connection attempt; the error names the node,
// the masked URL and the cause (a CONNACK return code when refused).
func (c *conn) connectOnce() error {
	select {
	case <-c.lost: // a loss reported for the previous connection
	default:
	}
	tok := c.client.Connect()
	select {
	case <-tok.Done():
	case <-c.stop:
		// the attempt ends within connect_timeout_sec: let it, then hang
		// up, so that no connection outlives Close
		<-tok.Done()
		if tok.Error() == nil {
			c.client.Disconnect(0)
		}
		return errStopped
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("node %q: connect to %s: %w", c.node, c.masked, connackErr(err))
	}
	if c.onConnect != nil {
		if err := c.onConnect(c.client); err != nil {
			c.client.Disconnect(0)
			return fmt.Errorf("node %q: %s: %w", c.node, c.masked, err)
		}
	}
	return nil
}

var errStopped = errors.New("stopped")

// wait sleeps d unless stopped first.
func (c *conn) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.stop:
		return false
	case <-t.C:
		return true
	}
}

func (c *conn) setUp(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if up == (c.connected.Load() == 1) {
		return
	}
	if up {
		c.connected.Store(1)
		close(c.up)
	} else {
		c.connected.Store(0)
		c.up = make(chan struct{})
	}
}

// upChan is closed while the connection is up.
func (c *conn) upChan() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// waitUp blocks until connected, ctx ends or stop closes.
func (c *conn) waitUp(ctx context.Context, stop <-chan struct{}) error {
	select {
	case <-c.upChan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return errStopped
	case <-c.stop:
		return errStopped
	}
}

// close stops the loop and disconnects, waiting at most until ctx ends.
func (c *conn) close(ctx context.Context) {
	c.stopOnce.Do(func() { close(c.stop) })
	if !c.started {
		return
	}
	select {
	case <-c.done:
	case <-ctx.Done():
	}
}

var connMetrics = []plugin.MetricSpec{
	{Name: "disconnects_total", Help: "Connections to the broker lost."},
	{Name: "reconnects_total", Help: "Connections re-established after a loss."},
	{Name: "connected", Help: "1 while connected to the broker, 0 while away (the node's health: no status hook exists).", Gauge: true},
}

// refusedError is a CONNACK refusal with its return code.
type refusedError struct {
	code byte
	err  error
}

func (e *refusedError) Error() string {
	hint := ""
	switch e.code {
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		hint = ": check username and password"
	case packets.ErrRefusedIDRejected:
		hint = ": check client_id"
	}
	return fmt.Sprintf("broker refused the connection (CONNACK return code %d, %s)%s", e.code, packets.ConnackReturnCodes[e.code], hint)
}

func (e *refusedError) Unwrap() error { return e.err }

// connackErr names the return code of a refused connection.
func connackErr(err error) error {
	for code, known := range packets.ConnErrors {
		if known != nil && code >= 1 && code <= 5 && errors.Is(err, known) {
			return &refusedError{code: code, err: err}
		}
	}
	return err
}
