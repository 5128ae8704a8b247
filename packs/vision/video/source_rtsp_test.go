package video

import (
	"github.com/schnitzel-stream/schnitzel/packs/vision/ffmpeg"

	"errors"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
	"github.com/schnitzel-stream/schnitzel/plugin"
)

// These tests run a real RTSP exchange on loopback: ffmpeg publishes H.264
// to the test relay (rtspserver_test.go) and our source's ffmpeg plays it.

func epochOf(p *packet.Packet) int64 {
	v, _ := p.Meta.Get("epoch")
	n, _ := v.(int64)
	return n
}

func rtspCfg(url string, kv ...any) *packet.Map {
	base := []any{"url", url, "source_id", "cam1", "reconnect_backoff_sec", 0.1, "reconnect_backoff_max_sec", 0.4,
		"open_timeout_sec", 15.0, "read_timeout_sec", 3.0}
	return cfgOf(append(base, kv...)...)
}

// TestRTSPReadFrames reads a camera over both transports: RTP interleaved
// in the RTSP connection (tcp) and RTP datagrams (udp).
func TestRTSPReadFrames(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			needFFmpeg(t)
			srv := startRTSPServer(t, "127.0.0.1:0")
			pub := startPublisher(t, srv.url("cam"))
			srv.waitPublished(t)
			n, _ := build(t, rtspName, rtspCfg(srv.url("cam"), "max_frames", 10, "transport", transport))
			rec := newRecorder(0)
			runToEnd(t, n, rec, 30*time.Second, pub)
			pkts := rec.packets()
			if len(pkts) != 10 {
				t.Fatalf("got %d frames, want max_frames 10", len(pkts))
			}
			prev := int64(-1)
			for _, p := range pkts {
				f := frameOf(t, p)
				if f.Width != 320 || f.Height != 240 {
					t.Fatalf("frame %dx%d", f.Width, f.Height)
				}
				if p.Kind != "frame" || p.SourceID != "cam1" || epochOf(p) != 1 {
					t.Fatalf("packet kind %q source %q epoch %d", p.Kind, p.SourceID, epochOf(p))
				}
				if f.Index <= prev {
					t.Fatalf("frame_idx not increasing: %d after %d", f.Index, prev)
				}
				prev = f.Index
				key, _ := p.Meta.Get("idempotency_key")
				if want := "frame:cam1:1:" + itoa(f.Index); key != want {
					t.Fatalf("idempotency_key %v, want %s", key, want)
				}
			}
			// The test pattern is not a flat picture.
			f := frameOf(t, pkts[9])
			b0, g0, r0 := f.At(10, 10)
			b1, g1, r1 := f.At(300, 200)
			if b0 == b1 && g0 == g1 && r0 == r1 {
				t.Errorf("pixels at (10,10) and (300,200) are equal: %d %d %d", b0, g0, r0)
			}
			if transport == "udp" && srv.forwardedUDP.Load() == 0 {
				t.Error("no RTP datagram sent: the stream did not go over UDP")
			}
			if metric(n, "reconnect_total") != 0 || metric(n, "emitted_total") != 10 {
				t.Errorf("metrics %v", n.(plugin.Metrics).Metrics())
			}
			pub.stop()
			noFFmpegChildren(t)
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRTSPPublisherLossAndReconnect: the camera's stream disappears (the
// relay drops readers, DESCRIBE answers 404), the source retries with
// backoff, and frames resume in a new epoch when the camera is back.
func TestRTSPPublisherLossAndReconnect(t *testing.T) {
	needFFmpeg(t)
	srv := startRTSPServer(t, "127.0.0.1:0")
	url := srv.url("cam")
	pub := startPublisher(t, url)
	// A password in the URL must never reach logs or errors.
	secretURL := strings.Replace(url, "rtsp://", "rtsp://admin:hunter2@", 1)
	n, logs := build(t, rtspName, rtspCfg(secretURL))
	rec := newRecorder(0)
	stop, _ := runSource(t, n, rec)
	defer stop()

	rec.waitFor(t, 30*time.Second, "first frames", func(p []*packet.Packet) bool { return len(p) >= 5 })
	pub.stop()
	poll.Until(t, 15*time.Second, "stream loss to be noticed", func() bool { return metric(n, "stream_lost_total") >= 1 })
	poll.Until(t, 15*time.Second, "a failed reopen while the camera is away", func() bool { return metric(n, "open_failures_total") >= 1 })
	before := len(rec.packets())

	pub = startPublisher(t, url)
	rec.waitFor(t, 30*time.Second, "frames of epoch 2", func(p []*packet.Packet) bool {
		return len(p) > before+5 && epochOf(p[len(p)-1]) == 2
	})
	if got := metric(n, "reconnect_total"); got < 2 {
		t.Errorf("reconnect_total = %d, want >= 2 (after the loss and after the failed reopen)", got)
	}
	pkts := rec.packets()
	for i := 1; i < len(pkts); i++ {
		if frameOf(t, pkts[i]).Index <= frameOf(t, pkts[i-1]).Index {
			t.Fatalf("frame_idx went back at %d", i)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	l := logs.String()
	if testing.Verbose() {
		t.Logf("source logs:\n%s", l)
	}
	if strings.Contains(l, "hunter2") {
		t.Errorf("password leaked into logs:\n%s", l)
	}
	if !strings.Contains(l, "camera=cam1") || !strings.Contains(l, "***:***@") || !strings.Contains(l, "stream lost") {
		t.Errorf("logs do not name camera, masked URL and cause:\n%s", l)
	}
	pub.stop()
	noFFmpegChildren(t)
}

// TestRTSPServerRestart: the whole server goes away and comes back on the
// same port.
func TestRTSPServerRestart(t *testing.T) {
	needFFmpeg(t)
	srv := startRTSPServer(t, "127.0.0.1:0")
	addr := srv.addr
	url := srv.url("cam")
	pub := startPublisher(t, url)
	n, _ := build(t, rtspName, rtspCfg(url))
	rec := newRecorder(0)
	stop, _ := runSource(t, n, rec)
	defer stop()
	rec.waitFor(t, 30*time.Second, "first frames", func(p []*packet.Packet) bool { return len(p) >= 5 })

	srv.close()
	pub.stop()
	poll.Until(t, 15*time.Second, "refused reconnects", func() bool { return metric(n, "open_failures_total") >= 2 })
	_ = startRTSPServer(t, addr) // closed by its t.Cleanup
	pub = startPublisher(t, url)
	rec.waitFor(t, 30*time.Second, "frames after the restart", func(p []*packet.Packet) bool { return epochOf(p[len(p)-1]) == 2 })
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	pub.stop()
	noFFmpegChildren(t)
}

// TestRTSPStall: the connection stays open but media stops; the read
// timeout declares the stream lost instead of waiting forever.
func TestRTSPStall(t *testing.T) {
	needFFmpeg(t)
	srv := startRTSPServer(t, "127.0.0.1:0")
	url := srv.url("cam")
	pub := startPublisher(t, url)
	n, logs := build(t, rtspName, rtspCfg(url, "read_timeout_sec", 1.0))
	rec := newRecorder(0)
	stop, _ := runSource(t, n, rec)
	defer stop()
	rec.waitFor(t, 30*time.Second, "first frames", func(p []*packet.Packet) bool { return len(p) >= 3 })
	srv.paused.Store(true)
	poll.Until(t, 15*time.Second, "the stall to count as a loss", func() bool { return metric(n, "stream_lost_total") >= 1 })
	if !strings.Contains(logs.String(), "no frame within the timeout") {
		t.Errorf("log does not give the stall as cause:\n%s", logs)
	}
	srv.paused.Store(false)
	rec.waitFor(t, 30*time.Second, "frames after the stall", func(p []*packet.Packet) bool { return epochOf(p[len(p)-1]) >= 2 })
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	pub.stop()
	noFFmpegChildren(t)
}

// TestRTSPOpenFailure: nothing listens; with reconnect_max_attempts the
// source gives up with an error naming the camera and the masked URL, and
// it backs off between attempts instead of spinning.
func TestRTSPOpenFailure(t *testing.T) {
	needFFmpeg(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port with nobody on it: connection refused
	url := "rtsp://admin:hunter2@" + addr + "/cam"
	t.Run("max_attempts", func(t *testing.T) {
		n, _ := build(t, rtspName, rtspCfg(url, "reconnect_max_attempts", 3, "reconnect_backoff_sec", 0.2, "reconnect_backoff_max_sec", 0.3))
		start := time.Now()
		_, done := runSource(t, n, newRecorder(0))
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("source did not give up")
		}
		if err == nil {
			t.Fatal("no error after 3 failed attempts")
		}
		msg := err.Error()
		for _, w := range []string{"rtsp cam1", "after 3 attempts", "***:***@" + addr} {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q lacks %q", msg, w)
			}
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("error leaks the password: %s", msg)
		}
		// Waits 0.2 + 0.3 s between the three attempts.
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("3 attempts took %v: backoff not applied", d)
		}
		if metric(n, "open_failures_total") != 3 || metric(n, "reconnect_total") != 2 {
			t.Errorf("open_failures_total %d reconnect_total %d", metric(n, "open_failures_total"), metric(n, "reconnect_total"))
		}
	})
	t.Run("reconnect_off", func(t *testing.T) {
		n, _ := build(t, rtspName, rtspCfg(url, "reconnect", false))
		_, done := runSource(t, n, newRecorder(0))
		if err := <-done; err == nil || !strings.Contains(err.Error(), "cannot open") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancel_during_backoff", func(t *testing.T) {
		n, _ := build(t, rtspName, rtspCfg(url, "reconnect_backoff_sec", 30.0, "reconnect_backoff_max_sec", 30.0))
		stop, _ := runSource(t, n, newRecorder(0))
		poll.Until(t, 15*time.Second, "first failure", func() bool { return metric(n, "open_failures_total") >= 1 })
		start := time.Now()
		if err := stop(); err != nil {
			t.Fatalf("run: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("cancel during a 30 s backoff took %v", d)
		}
	})
	t.Run("ffmpeg_missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		n, _ := build(t, rtspName, rtspCfg(url))
		_, done := runSource(t, n, newRecorder(0))
		err := <-done
		if !errors.Is(err, ffmpeg.ErrFFmpegNotFound) || !strings.Contains(err.Error(), "cam1") {
			t.Fatalf("err = %v", err)
		}
	})
	noFFmpegChildren(t)
}

// slowEmitter stands for a downstream slower than the camera: each Emit
// takes d (the delay is the behaviour under test, not synchronisation).
type slowEmitter struct {
	*recorder
	d time.Duration
}

func (s slowEmitter) Emit(p *packet.Packet) error {
	time.Sleep(s.d)
	return s.recorder.Emit(p)
}

func (s slowEmitter) EmitPort(_ string, p *packet.Packet) error { return s.Emit(p) }

// TestRTSPSlowDownstream: with latest_only (default) a slow consumer gets
// the newest frames and the stale ones are skipped, without the read
// timeout mistaking backpressure for a stall; with latest_only false every
// frame is queued and the watchdog is still not fooled.
func TestRTSPSlowDownstream(t *testing.T) {
	needFFmpeg(t)
	srv := startRTSPServer(t, "127.0.0.1:0")
	pub := startPublisher(t, srv.url("cam"))
	srv.waitPublished(t)
	for _, latest := range []bool{true, false} {
		t.Run("latest_only="+strconv.FormatBool(latest), func(t *testing.T) {
			// 25 fps camera, a consumer taking 0.5 s per frame, a 0.2 s read
			// timeout: a watchdog that counted downstream time would fire
			// (and, once the frames ffmpeg had already piped were used up,
			// the stream would count as lost).
			n, logs := build(t, rtspName, rtspCfg(srv.url("cam"), "latest_only", latest, "read_timeout_sec", 0.2))
			rec := newRecorder(0)
			stop, _ := runSource(t, n, slowEmitter{rec, 500 * time.Millisecond})
			rec.waitFor(t, 30*time.Second, "8 frames", func(p []*packet.Packet) bool { return len(p) >= 8 })
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			if lost := metric(n, "stream_lost_total"); lost != 0 {
				t.Errorf("stream_lost_total = %d: backpressure taken for a stall\n%s", lost, logs)
			}
			pkts := rec.packets()
			gaps := frameOf(t, pkts[len(pkts)-1]).Index - frameOf(t, pkts[0]).Index - int64(len(pkts)-1)
			if latest {
				if metric(n, "skipped_total") == 0 || gaps == 0 {
					t.Errorf("latest_only: skipped_total %d, frame_idx gaps %d; want stale frames skipped", metric(n, "skipped_total"), gaps)
				}
			} else if metric(n, "skipped_total") != 0 || gaps != 0 {
				t.Errorf("queue mode: skipped_total %d, gaps %d; want every frame", metric(n, "skipped_total"), gaps)
			}
		})
	}
	pub.stop()
	noFFmpegChildren(t)
}

// decoderArgv returns the command line and environment of our ffmpeg
// child that reads an input script (not the publisher), "" if none runs.
func decoderArgv(t testing.TB) (cmdline, environ string) {
	t.Helper()
	for _, c := range ffmpegChildren(t) {
		pid, _, _ := strings.Cut(c, ":")
		b, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if err != nil || !strings.Contains(string(b), "concat") {
			continue
		}
		env, _ := os.ReadFile("/proc/" + pid + "/environ")
		return strings.ReplaceAll(string(b), "\x00", " "), string(env)
	}
	return "", ""
}

// TestRTSPCredentialsNotInArgv: a camera that demands a password gets it,
// while ffmpeg's command line (which every local user reads with ps or
// /proc/PID/cmdline) and its environment hold neither the password nor
// the token. Both handoffs run: the pipe (Unix) and the private file
// (Windows), which must be gone once ffmpeg has opened the stream.
func TestRTSPCredentialsNotInArgv(t *testing.T) {
	needFFmpeg(t)
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	srv := startRTSPServer(t, "127.0.0.1:0")
	srv.requireBasic("admin:hunter2")
	pub := startPublisher(t, srv.url("cam"))
	srv.waitPublished(t)
	secretURL := strings.Replace(srv.url("cam"), "rtsp://", "rtsp://admin:hunter2@", 1) + "?token=tok3n"
	for _, tc := range []struct {
		name string
		file bool
		loc  string
	}{{"pipe", false, "-i pipe:3"}, {"file", true, "-i file:"}} {
		t.Run(tc.name, func(t *testing.T) {
			defer ffmpeg.UseFileHandoff(tc.file)()
			n, logs := build(t, rtspName, rtspCfg(secretURL))
			rec := newRecorder(0)
			stop, _ := runSource(t, n, rec)
			defer stop()
			rec.waitFor(t, 30*time.Second, "frames from a camera that wants a password", func(p []*packet.Packet) bool { return len(p) >= 3 })
			cmdline, environ := decoderArgv(t)
			if cmdline == "" {
				t.Fatal("no ffmpeg child reading an input script")
			}
			for _, secret := range []string{"hunter2", "tok3n", "admin"} {
				if strings.Contains(cmdline, secret) || strings.Contains(environ, secret) {
					t.Errorf("%q visible to other users: cmdline %q", secret, cmdline)
				}
			}
			if !strings.Contains(cmdline, tc.loc) {
				t.Errorf("cmdline %q lacks %q", cmdline, tc.loc)
			}
			if tc.name == "file" {
				_, path, _ := strings.Cut(cmdline, "-i file:")
				path, _, _ = strings.Cut(path, " ")
				if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
					t.Errorf("input script %s still there after ffmpeg opened the stream (%v)", path, err)
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			if l := logs.String(); strings.Contains(l, "hunter2") || strings.Contains(l, "tok3n") {
				t.Errorf("secret in logs:\n%s", l)
			}
		})
	}
	t.Run("quote in password", func(t *testing.T) {
		// The script quotes the URL for ffmpeg's concat parser ('\'').
		srv.requireBasic(`admin:it's\a`)
		defer srv.requireBasic("admin:hunter2")
		n, _ := build(t, rtspName, rtspCfg(strings.Replace(srv.url("cam"), "rtsp://", `rtsp://admin:it's\a@`, 1), "max_frames", 3))
		rec := newRecorder(0)
		runToEnd(t, n, rec, 30*time.Second, pub)
		if len(rec.packets()) != 3 {
			t.Fatalf("got %d frames", len(rec.packets()))
		}
	})
	t.Run("wrong password refused", func(t *testing.T) {
		// Proves the relay's check is real: the frames above needed the password.
		before := srv.unauthorized.Load()
		n, _ := build(t, rtspName, rtspCfg(strings.Replace(secretURL, "hunter2", "wrong", 1), "reconnect", false))
		_, done := runSource(t, n, newRecorder(0))
		err := <-done
		if err == nil || !strings.Contains(err.Error(), "cannot open") || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("err = %v, want a masked open failure", err)
		}
		if srv.unauthorized.Load() == before {
			t.Error("the relay never answered 401")
		}
	})
	pub.stop()
	noFFmpegChildren(t)
}

// TestRTSPURLControlCharacters: a URL the input script could not carry
// is refused when the graph is checked, not when ffmpeg starts.
func TestRTSPURLControlCharacters(t *testing.T) {
	if err := (&RTSPConfig{URL: "rtsp://cam/x\nfile 'x'", LiveConfig: LiveConfig{OpenTimeoutSec: 1, ReadTimeoutSec: 1}}).Validate(); err == nil {
		t.Error("Validate accepted a URL with a newline")
	}
}
