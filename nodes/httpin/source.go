package httpin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// Hand-off states of a request: the handler and Run race for it once, so
// a request is either emitted whole by Run or refused whole by its
// handler, never both.
const (
	queued int32 = iota
	taken
	abandoned
)

// request is one HTTP request's packets on their way to Run.
type request struct {
	pkts    []*packet.Packet
	state   atomic.Int32
	emitted chan error // Run's result, buffered 1

	// after_commit only: packets not yet acked; committed is closed
	// when the last is, nacked takes the first nack.
	pending   atomic.Int64
	committed chan struct{}
	nacked    chan error
}

// watch makes p report its commit (or its loss) to r. With fan-out several
// sinks may ack the same packet: only the first ack counts.
func (r *request) watch(p *packet.Packet) {
	var once atomic.Bool
	p.Ack = func() {
		if once.CompareAndSwap(false, true) && r.pending.Add(-1) == 0 {
			close(r.committed)
		}
	}
	p.Nack = func(err error) {
		select {
		case r.nacked <- err:
		default:
		}
	}
}

type source struct {
	cfg    Config
	env    plugin.Env
	after  bool // answer after the commit (202), else on accept (200)
	health string

	reqs chan *request
	sem  chan struct{} // max_inflight

	srv                           *http.Server
	addr                          atomic.Pointer[string]
	served                        chan struct{} // Serve returned
	stopping                      chan struct{} // closed when Run ends: nothing more is taken
	closing                       chan struct{} // closed by Close: commit waiters give up
	stopOnce, closeOnce, shutOnce sync.Once
	shutDone                      chan struct{}  // Shutdown returned
	handlers                      sync.WaitGroup // ServeHTTP calls; Close waits for them
	hmu                           sync.RWMutex   // orders handlers.Add before Close's Wait
	closed                        bool           // under hmu: Close is waiting for handlers
	closeErr                      error

	*plugin.Counters
	requests, accepted, unauthorized, tooLarge, badRequest, throttled, notCommitted, inflight *plugin.Counter

	warnAuth, warnCommit plugin.RateLog
}

func newSource(c Config, env plugin.Env) (plugin.Source, error) {
	if c.SourceID == "" {
		c.SourceID = env.NodeID
	}
	after := false
	switch c.Ack {
	case AckAfterCommit:
		if !env.CommitDownstream {
			return nil, plugin.Errorf("ack", "after_commit, but no node downstream commits packets (a SqliteQueueSink): every request would wait ack_timeout_sec and get 503; use auto or on_accept")
		}
		after = true
	case AckAuto:
		after = env.CommitDownstream
	}
	cs := env.Counters()
	return &source{
		cfg: c, env: env, after: after, health: c.Path + "/health",
		reqs:     make(chan *request, c.QueueSize),
		sem:      make(chan struct{}, c.MaxInflight),
		served:   make(chan struct{}),
		stopping: make(chan struct{}),
		closing:  make(chan struct{}),
		shutDone: make(chan struct{}),
		warnAuth: plugin.RateLog{Burst: 5}, warnCommit: plugin.RateLog{Burst: 5},
		Counters: cs, requests: cs.Get("requests_total"), accepted: cs.Get("accepted_total"),
		unauthorized: cs.Get("unauthorized_total"), tooLarge: cs.Get("too_large_total"),
		badRequest: cs.Get("bad_request_total"), throttled: cs.Get("throttled_total"),
		notCommitted: cs.Get("not_committed_total"), inflight: cs.Get("inflight"),
	}, nil
}

// Addr is the address the endpoint is bound to ("" before Start): with
// listen port 0, the port the system picked.
func (s *source) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// AckMode is the mode in effect (auto resolved): after_commit or on_accept.
func (s *source) AckMode() string {
	if s.after {
		return AckAfterCommit
	}
	return AckOnAccept
}

func (s *source) Start(context.Context) error {
	var tlsCfg *tls.Config
	if s.cfg.TLSCertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("tls_cert_file/tls_key_file: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("config.listen %q: %w", s.cfg.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	read := s.cfg.ReadTimeoutSec.Duration()
	s.srv = &http.Server{
		Handler: s,
		// Slow clients (slowloris) are cut off: headers, then the whole
		// request, must arrive in time; the answer may wait for a commit.
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeoutSec.Duration(),
		ReadTimeout:       read,
		WriteTimeout:      read + s.cfg.HandoffTimeoutSec.Duration() + s.cfg.AckTimeoutSec.Duration() + 5*time.Second,
		IdleTimeout:       s.cfg.IdleTimeoutSec.Duration(),
		MaxHeaderBytes:    64 << 10,
		// Scanners and broken TLS clients would fill the log at Warn.
		ErrorLog: slog.NewLogLogger(s.env.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.env.Logger.Error("http ingest server stopped", "addr", addr, "err", err)
		}
	}()
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	s.env.Logger.Info("http ingest listening", "addr", addr, "url", scheme+"://"+addr+s.cfg.Path, "ack", s.AckMode())
	return nil
}

// Run hands each request's packets downstream, in order and together.
func (s *source) Run(ctx context.Context, out plugin.Emitter) error {
	defer s.stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case r := <-s.reqs:
			if ctx.Err() != nil {
				return nil // r stays queued: its handler answers 503 when stopping closes
			}
			if !r.state.CompareAndSwap(queued, taken) {
				continue // its handler gave up on it
			}
			var err error
			for _, p := range r.pkts {
				if err = out.Emit(p); err != nil {
					break
				}
			}
			r.emitted <- err
			if err != nil {
				if errors.Is(err, plugin.ErrStop) {
					return nil
				}
				return fmt.Errorf("node %q: %w", s.env.NodeID, err)
			}
		}
	}
}

// stop marks the end of hand-offs and stops accepting connections;
// requests in flight go on until they are answered (Close bounds that).
func (s *source) stop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		if s.srv == nil {
			close(s.shutDone)
			return
		}
		go s.shutdown()
	})
}

func (s *source) shutdown() {
	s.shutOnce.Do(func() {
		defer close(s.shutDone)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeoutSec.Duration())
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.env.Logger.Warn("http ingest: requests still in flight at shutdown_timeout_sec: connections closed",
				"addr", s.Addr(), "shutdown_timeout_sec", float64(s.cfg.ShutdownTimeoutSec))
			s.srv.Close()
		}
	})
}

// Close stops the server: requests still waiting for a commit are
// answered 503 (the graph has drained: no commit is coming), then
// connections close, bounded by ctx.
func (s *source) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.stop()
		close(s.closing)
		if s.srv == nil {
			return
		}
		select {
		case <-s.shutDone:
		case <-ctx.Done():
			s.srv.Close()
			<-s.shutDone
		}
		<-s.served
		// The server no longer waits for handlers after a forced close:
		// they return promptly (closing), so wait for them here.
		s.hmu.Lock()
		s.closed = true
		s.hmu.Unlock()
		done := make(chan struct{})
		go func() { s.handlers.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.closeErr = fmt.Errorf("node %q: http handlers still running at the close deadline", s.env.NodeID)
		}
	})
	return s.closeErr
}
