// Package sdnotify implements the systemd notification protocol (sd_notify(3))
// in pure Go: one datagram per state change to the unixgram socket named by
// $NOTIFY_SOCKET. Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so
// the run command can call it unconditionally.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// States understood by systemd.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Reloading = "RELOADING=1"
	Watchdog  = "WATCHDOG=1"
)

// Notify sends state to $NOTIFY_SOCKET. It reports whether a message was sent;
// (false, nil) means the process is not supervised by systemd.
func Notify(state string) (bool, error) {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return false, nil
	}
	if err := Send(socket, state); err != nil {
		return false, err
	}
	return true, nil
}

// Status sends a free-form STATUS= line (shown by systemctl status).
func Status(text string) (bool, error) { return Notify("STATUS=" + text) }

// Send writes one datagram with state to socket. A socket name starting with
// '@' is in the Linux abstract namespace (the net package maps '@' to the
// leading NUL byte).
func Send(socket, state string) error {
	if socket == "" {
		return errors.New("sdnotify: empty socket name")
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: dial %s: %w", socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q to %s: %w", state, socket, err)
	}
	return nil
}

// WatchdogInterval returns the watchdog period systemd expects
// (WatchdogSec=, passed as WATCHDOG_USEC) and whether the watchdog is on for
// this process (WATCHDOG_PID, when set, must be our pid).
func WatchdogInterval() (time.Duration, bool) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" {
		if p, err := strconv.Atoi(pid); err != nil || p != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(n) * time.Microsecond, true
}

// RunWatchdog pings the systemd watchdog at half the configured interval
// until ctx ends. healthy, when non-nil, is asked before each ping; a ping is
// skipped while it returns an error, so a wedged runtime is restarted by
// systemd instead of being kept alive by a goroutine that merely ticks. It
// returns immediately when the watchdog is off.
func RunWatchdog(ctx context.Context, healthy func() error) {
	interval, ok := WatchdogInterval()
	if !ok {
		return
	}
	runWatchdog(ctx, interval/2, healthy, func() { _, _ = Notify(Watchdog) })
}

func runWatchdog(ctx context.Context, every time.Duration, healthy func() error, ping func()) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if healthy == nil || healthy() == nil {
			ping()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
