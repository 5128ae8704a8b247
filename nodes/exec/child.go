package execnodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/schnitzel-stream/schnitzel/internal/childproc"
	"github.com/schnitzel-stream/schnitzel/plugin"
	"github.com/schnitzel-stream/schnitzel/redact"
)

// child is one running plugin process.
type child struct {
	cmd     *exec.Cmd
	stdin   *os.File
	frames  chan frameItem // closed at stdout EOF
	exited  chan struct{}  // closed once Wait returned
	quit    chan struct{}  // closed when we stop reading frames
	once    sync.Once
	waitErr error
	tail    *childproc.Tail
}

// spawn starts argv. Our own pipes (not StdinPipe/StdoutPipe) so that Wait
// does not depend on our reads finishing, and the stdin end supports
// write deadlines: a child that stops reading cannot block us.
func spawn(argv, env []string, dir string, maxFrame int, log *slog.Logger, rl *plugin.RateLog) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	childproc.SetGroup(cmd)
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if err := cmd.Start(); err != nil {
		closeAll(inR, inW, outR, outW, errR, errW)
		return nil, fmt.Errorf("start %s: %w", childproc.Name(argv), err)
	}
	closeAll(inR, outW, errW) // the child holds its ends
	c := &child{cmd: cmd, stdin: inW, frames: make(chan frameItem, 16), exited: make(chan struct{}), quit: make(chan struct{}), tail: &childproc.Tail{}}
	go func() {
		readFrames(outR, maxFrame, c.frames, c.quit)
		_ = outR.Close()
	}()
	go copyStderr(errR, c.tail, log, rl)
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// dead reports whether the process has exited.
func (c *child) dead() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// write sends one frame, giving up at deadline or when ctx ends.
func (c *child) write(ctx context.Context, b []byte, deadline time.Time) error {
	_ = c.stdin.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.stdin.SetWriteDeadline(time.Now()) })
	_, err := c.stdin.Write(b)
	stop()
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// next waits for the next frame until timeout fires (nil: never) or ctx
// ends. ok is false at
// stdout EOF.
func (c *child) next(ctx context.Context, timeout <-chan time.Time) (it frameItem, ok bool, err error) {
	select {
	case it, ok = <-c.frames:
		return it, ok, nil
	case <-timeout:
		return it, false, errTimeout
	case <-ctx.Done():
		return it, false, ctx.Err()
	}
}

var errTimeout = errors.New("timeout")

// kill ends the process group and waits for the exit to be reaped.
func (c *child) kill() {
	c.once.Do(func() { close(c.quit) })
	_ = c.stdin.Close()
	childproc.KillGroup(c.cmd)
	<-c.exited
}

// stop asks the child to exit (a close frame, then EOF on stdin), waits
// until ctx ends or grace passes, then kills the whole group, so nothing it
// started outlives it.
func (c *child) stop(ctx context.Context, grace time.Duration) {
	if !c.dead() {
		_ = c.write(ctx, []byte("{\"type\":\"close\"}\n"), time.Now().Add(grace))
	}
	c.once.Do(func() { close(c.quit) })
	_ = c.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-ctx.Done():
	case <-t.C:
	}
	childproc.KillGroup(c.cmd) // also reaches grandchildren of a child that did exit
	<-c.exited
}

// exitReason describes how the child ended, with its last stderr lines.
func (c *child) exitReason() string {
	msg := ""
	select {
	case <-c.exited:
		if c.waitErr == nil {
			msg = "plugin exited (status 0)"
		} else {
			msg = "plugin exited (" + c.waitErr.Error() + ")"
		}
	case <-time.After(2 * time.Second):
		msg = "plugin closed stdout"
	}
	if t := c.tail.String(); t != "" {
		msg += "; last stderr: " + t
	}
	return msg
}

// copyStderr forwards the child's stderr (the plugin's log) to our
// logger, rate-limited, and keeps the last lines for crash messages.
func copyStderr(r io.ReadCloser, t *childproc.Tail, log *slog.Logger, rl *plugin.RateLog) {
	defer r.Close()
	childproc.ScanLines(r, func(line string) {
		rl.Warn(log, "plugin stderr", "line", redact.Text(line))
		t.Add(line)
	})
}
