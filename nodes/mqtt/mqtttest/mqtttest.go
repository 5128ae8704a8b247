// Package mqtttest runs a real mosquitto broker for tests: on a free
// loopback port, with a temporary config, stoppable and restartable on the
// same port (an outage the clients must ride out).
package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/logbuf"
	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// Options shape the broker.
type Options struct {
	// Users maps user names to passwords; empty allows anonymous clients.
	Users map[string]string
	// TLS, when set, makes the listener TLS with these PEM files.
	CAFile, CertFile, KeyFile string
	// Persist keeps sessions and queued messages in a file across a
	// graceful Restart (mosquitto writes it on SIGTERM).
	Persist bool
}

// Broker is one mosquitto process (or none, between Stop and Restart).
type Broker struct {
	t    testing.TB
	Port int
	dir  string
	conf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *logbuf.Buffer
}

// Binary is mosquitto's path, "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// Start runs a broker, skipping the test when mosquitto is missing. It is
// stopped when the test ends.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	if Binary() == "" {
		t.Skip("mosquitto not installed (apt-get install mosquitto)")
	}
	b := &Broker{t: t, dir: t.TempDir()}
	b.Port = freePort(t)
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	var c strings.Builder
	fmt.Fprintf(&c, "listener %d 127.0.0.1\n", b.Port)
	c.WriteString("max_queued_messages 0\nmax_inflight_messages 20\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	if os.Geteuid() == 0 {
		// as root mosquitto switches to user mosquitto, who cannot read
		// the test's private temp directory
		c.WriteString("user root\n")
	}
	if o.Persist {
		fmt.Fprintf(&c, "persistence true\npersistence_location %s/\nautosave_interval 0\n", b.dir)
	} else {
		c.WriteString("persistence false\n")
	}
	if o.CertFile != "" {
		fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", o.CAFile, o.CertFile, o.KeyFile)
	}
	if len(o.Users) > 0 {
		pw := filepath.Join(b.dir, "passwd")
		if err := os.WriteFile(pw, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for u, p := range o.Users {
			out, err := exec.Command("mosquitto_passwd", "-b", pw, u, p).CombinedOutput()
			if err != nil {
				t.Skipf("mosquitto_passwd: %v %s", err, out)
			}
		}
		fmt.Fprintf(&c, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		c.WriteString("allow_anonymous true\n")
	}
	if err := os.WriteFile(b.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Restart()
	t.Cleanup(b.Stop)
	return b
}

// URL is the broker's address with scheme (tcp or ssl).
func (b *Broker) URL(scheme string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, b.Port)
}

// Restart starts mosquitto on the same port and waits until it accepts
// connections.
func (b *Broker) Restart() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		b.t.Fatal("mqtttest: Restart while running")
	}
	cmd := exec.Command(Binary(), "-c", b.conf)
	b.log = &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("mqtttest: start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.cmd, b.done = cmd, done
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	ok := poll.Wait(10*time.Second, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	select {
	case <-done:
		b.cmd = nil
		b.t.Fatalf("mqtttest: mosquitto exited: %s", b.log)
	default:
	}
	if !ok {
		b.t.Fatalf("mqtttest: mosquitto not listening on %s: %s", addr, b.log)
	}
}

// Stop ends the broker gracefully (SIGTERM: a persistent broker saves its
// sessions); safe to call when it is not running.
func (b *Broker) Stop() { b.signal(syscall.SIGTERM) }

// Kill ends the broker with SIGKILL: what it held in memory is gone.
func (b *Broker) Kill() { b.signal(syscall.SIGKILL) }

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(sig)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.cmd = nil
}

// Log is what mosquitto wrote since its last start.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.log == nil {
		return ""
	}
	return b.log.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
