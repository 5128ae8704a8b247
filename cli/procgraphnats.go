package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/schnitzel-stream/schnitzel/internal/procgraph"
	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// ensureNATSStreams makes every nats channel's stream exist before any
// process starts. The processes start together, and a JetStreamSource
// whose stream does not exist yet fails at once: without this, a consumer
// could start before its producer's JetStreamSink created the stream.
// The stream is created with the producer sink's settings (so the sink's
// own check then passes), and only when that sink says create_stream.
func ensureNATSStreams(ctx context.Context, s *procgraph.Spec, rep *procgraph.Report, logger *slog.Logger) error {
	for _, nc := range rep.NATSChannels(s) {
		if err := ensureNATSStream(ctx, nc, logger); err != nil {
			c := nc.Channel
			return fmt.Errorf("%s:%d: channel %q (stream %s at %s): %w", s.File, c.Line, c.ID, c.Stream, redact.URL(c.URL), err)
		}
	}
	return nil
}

func ensureNATSStream(ctx context.Context, nc procgraph.NATSChannel, logger *slog.Logger) error {
	c, cfg := nc.Channel, nc.Config
	str := func(k string) string { v, _ := cfg.GetString(k); return strings.TrimSpace(v) }
	opts := []nats.Option{nats.Name("schnitzel/procgraph"), nats.Timeout(5 * time.Second)}
	// The sink's credentials, so that run can reach what the sink reaches.
	if t := str("token"); t != "" {
		opts = append(opts, nats.Token(t))
	}
	if u := str("user"); u != "" {
		opts = append(opts, nats.UserInfo(u, str("password")))
	}
	if f := str("creds_file"); f != "" {
		opts = append(opts, nats.UserCredentials(f))
	}
	if f := str("nkey_file"); f != "" {
		o, err := nats.NkeyOptionFromSeed(f)
		if err != nil {
			return fmt.Errorf("producer node %q nkey_file: %w", nc.Node, err)
		}
		opts = append(opts, o)
	}
	if f := str("tls_ca_file"); f != "" {
		opts = append(opts, nats.RootCAs(f))
	}
	if f := str("tls_cert_file"); f != "" {
		opts = append(opts, nats.ClientCert(f, str("tls_key_file")))
	}
	conn, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = js.Stream(ctx, c.Stream)
	if err == nil {
		return nil // the sink checks that it covers the subject
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	if create, _ := cfg.Get("create_stream"); create != true {
		return fmt.Errorf("stream does not exist, and producer %q node %q does not create it (create it, or set create_stream: true)", nc.Producer, nc.Node)
	}
	sc := jetstream.StreamConfig{Name: c.Stream, Subjects: []string{c.Subject}, Storage: jetstream.FileStorage,
		Replicas: 1, MaxBytes: -1, Duplicates: 120 * time.Second}
	if v, ok := cfg.Get("stream_subjects"); ok {
		if xs, ok := v.([]any); ok && len(xs) > 0 {
			sc.Subjects = sc.Subjects[:0]
			for _, x := range xs {
				sc.Subjects = append(sc.Subjects, packet.PyStr(x))
			}
		}
	}
	if str("storage") == "memory" {
		sc.Storage = jetstream.MemoryStorage
	}
	if r, ok := cfg.Get("replicas"); ok {
		if n, ok := r.(int64); ok && n > 0 {
			sc.Replicas = int(n)
		}
	}
	if d := seconds(cfg, "duplicate_window_sec"); d > 0 {
		sc.Duplicates = d
	}
	if d := seconds(cfg, "max_age_sec"); d > 0 {
		sc.MaxAge = d
	}
	if _, err := js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream (subjects %v): %w", sc.Subjects, err)
	}
	logger.Info("stream created for channel", "channel", c.ID, "stream", c.Stream, "subjects", sc.Subjects)
	return nil
}

func seconds(cfg *packet.Map, key string) time.Duration {
	v, _ := cfg.Get(key)
	switch n := v.(type) {
	case int64:
		return time.Duration(n) * time.Second
	case float64:
		return time.Duration(n * float64(time.Second))
	}
	return 0
}
