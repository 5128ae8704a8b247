package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/poll"
)

// Two signals at once (timeout -s INT signals process and group) are one
// graceful stop; one more than a second later exits at once.
func TestSecondSignalCountsOnlyAfterOneSecond(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	signalClock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	defer func() { signalClock = time.Now }()

	ch := make(chan os.Signal, 4)
	exited := make(chan int, 1)
	var stops atomic.Int32
	a := &App{Signals: ch, Stderr: &bytes.Buffer{}, HardExit: func(code int) { exited <- code }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.watchSignals(ctx, func() { stops.Add(1) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	ch <- syscall.SIGINT
	ch <- syscall.SIGINT
	poll.Until(t, 10*time.Second, "the signals consumed", func() bool { return len(ch) == 0 && stops.Load() > 0 })
	select {
	case code := <-exited:
		t.Fatalf("two signals at once exited (%d) instead of draining", code)
	default:
	}
	mu.Lock()
	now = now.Add(1500 * time.Millisecond)
	mu.Unlock()
	ch <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code == 0 {
			t.Errorf("hard exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal 1.5 s later did not exit")
	}
	if stops.Load() != 1 {
		t.Errorf("stop called %d times", stops.Load())
	}
	<-done
}

func TestWatchdogStall(t *testing.T) {
	for _, c := range []struct {
		name, env, usec string
		flag            time.Duration
		want            time.Duration
		err             bool
	}{
		{name: "default", want: 60 * time.Second},
		{name: "half of WatchdogSec", usec: "40000000", want: 20 * time.Second},
		{name: "env", env: "7.5", usec: "40000000", want: 7500 * time.Millisecond},
		{name: "flag wins", env: "7", flag: 3 * time.Second, want: 3 * time.Second},
		{name: "bad env", env: "soon", err: true},
		{name: "negative flag", flag: -time.Second, err: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", c.usec)
			t.Setenv("WATCHDOG_PID", "")
			a := &App{Getenv: func(k string) string {
				if k == envStall {
					return c.env
				}
				return ""
			}}
			got, err := a.watchdogStall(c.flag)
			if (err != nil) != c.err || (!c.err && got != c.want) {
				t.Errorf("got %v, %v; want %v (error %v)", got, err, c.want, c.err)
			}
		})
	}
}

func TestSecondsOrDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "2.5": 2500 * time.Millisecond, "500ms": 500 * time.Millisecond, "1m": time.Minute} {
		var d time.Duration
		if err := (secondsOrDuration{&d}).Set(in); err != nil || d != want {
			t.Errorf("%q: %v %v, want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"soon", "NaN", "1e300", ""} {
		var d time.Duration
		if err := (secondsOrDuration{&d}).Set(in); err == nil {
			t.Errorf("%q accepted as %v", in, d)
		}
	}
}
