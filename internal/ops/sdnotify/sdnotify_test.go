package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// listen opens a real unixgram socket like systemd's notify socket.
func listen(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, path
}

func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyRealSocket(t *testing.T) {
	conn, path := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	for _, state := range []string{Ready, Watchdog, Stopping, "STATUS=draining 3 nodes"} {
		sent, err := Notify(state)
		if err != nil || !sent {
			t.Fatalf("Notify(%q) = %v, %v", state, sent, err)
		}
		if got := recv(t, conn); got != state {
			t.Errorf("socket got %q, want %q", got, state)
		}
	}
	if sent, err := Status("running"); err != nil || !sent {
		t.Fatal(sent, err)
	}
	if got := recv(t, conn); got != "STATUS=running" {
		t.Errorf("got %q", got)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "@schnitzel-sdnotify-test-" + strconv.Itoa(os.Getpid())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skipf("abstract sockets unsupported here: %v", err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if _, err := Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, conn); got != Ready {
		t.Errorf("got %q", got)
	}
}

func TestNotifyUnsetIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	sent, err := Notify(Ready)
	if sent || err != nil {
		t.Errorf("Notify without socket = %v, %v", sent, err)
	}
}

func TestNotifyMissingSocketErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if _, err := Notify(Ready); err == nil {
		t.Error("want error for a socket that does not exist")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, true},
		{"30000000", pid, 30 * time.Second, true},
		{"30000000", "1", 0, false},
		{"abc", "", 0, false},
		{"0", "", 0, false},
	}
	for _, tt := range tests {
		t.Setenv("WATCHDOG_USEC", tt.usec)
		t.Setenv("WATCHDOG_PID", tt.pid)
		got, ok := WatchdogInterval()
		if got != tt.want || ok != tt.ok {
			t.Errorf("usec=%q pid=%q: got %v %v, want %v %v", tt.usec, tt.pid, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRunWatchdogRealSocket(t *testing.T) {
	conn, path := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000") // 20ms: pings every 10ms
	t.Setenv("WATCHDOG_PID", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { RunWatchdog(ctx, nil); close(done) }()
	for i := 0; i < 3; i++ {
		if got := recv(t, conn); got != Watchdog {
			t.Fatalf("ping %d = %q", i, got)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog did not return after cancel")
	}
}

func TestRunWatchdogSkipsWhenUnhealthy(t *testing.T) {
	var healthy atomic.Bool
	var pings, checks atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		runWatchdog(ctx, time.Millisecond, func() error {
			if checks.Add(1) == 5 {
				healthy.Store(true)
			}
			if healthy.Load() {
				return nil
			}
			return errors.New("stalled")
		}, func() { pings.Add(1) })
		close(done)
	}()
	poll.Until(t, 5*time.Second, "a first watchdog ping", func() bool { return pings.Load() > 0 })
	cancel()
	<-done
	if c := checks.Load(); c < 5 {
		t.Fatalf("only %d checks", c)
	}
	// The first four checks were unhealthy, so pings lag checks by four.
	if p, c := pings.Load(), checks.Load(); p != c-4 {
		t.Errorf("pings=%d checks=%d, want pings = checks-4", p, c)
	}
}

func TestRunWatchdogOff(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan struct{})
	go func() { RunWatchdog(context.Background(), nil); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog should return at once when the watchdog is off")
	}
}
