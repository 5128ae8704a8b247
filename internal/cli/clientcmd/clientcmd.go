// Package clientcmd implements the commands that drive a running
// `schnitzel serve` over its HTTP API: graphs (ls, get, apply, rm, start,
// stop, restart), tap, top and fleet. They find the server's token file in
// the default state directory, so on the machine serve runs on (as the
// same account) they work without flags.
package clientcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/schnitzel-stream/schnitzel/internal/cli/exitcode"
	"github.com/schnitzel-stream/schnitzel/internal/cli/servecmd"
	"github.com/schnitzel-stream/schnitzel/internal/serve/client"
)

// Options are what the commands need from the App.
type Options struct {
	Getenv func(string) string
	Stdin  io.Reader
	// Signals delivers SIGINT/SIGTERM: tap and top end on one.
	Signals <-chan os.Signal
	// IsTerminal reports whether w is a terminal (top redraws in place
	// there); nil: never.
	IsTerminal func(w io.Writer) bool
}

// Environment variables the clients read when the flags are not given.
const (
	EnvServer    = "SCHNITZEL_SERVER"
	EnvTokenFile = "SCHNITZEL_TOKEN_FILE"
)

type conn struct {
	server, tokenFile, caFile string
}

func (o *Options) register(c *cobra.Command, cn *conn) {
	pf := c.PersistentFlags()
	pf.StringVar(&cn.server, "server", "", "URL of schnitzel serve (default $"+EnvServer+", else "+client.DefaultServer+")")
	pf.StringVar(&cn.tokenFile, "token-file", "", "file holding the API token (default $"+EnvTokenFile+", else the default state directory's token)")
	pf.StringVar(&cn.caFile, "ca-file", "", "PEM certificate(s) to trust for an https server (a self-signed --tls-cert)")
}

// client builds an API client from the flags, the environment and the
// default token file.
func (o *Options) client(cn *conn) (*client.Client, error) {
	server := cn.server
	if server == "" {
		server = o.Getenv(EnvServer)
	}
	tokenFile := cn.tokenFile
	if tokenFile == "" {
		tokenFile = o.Getenv(EnvTokenFile)
	}
	explicit := tokenFile != ""
	if tokenFile == "" {
		d, err := servecmd.DefaultDirs(o.Getenv)
		if err != nil {
			return nil, exitcode.Errorf(exitcode.Usage, "%v\n  fix: pass --token-file", err)
		}
		tokenFile = filepath.Join(d.State, servecmd.TokenFileName)
	}
	token, err := client.ReadToken(tokenFile)
	if err != nil {
		fix := "pass --token-file with the serve's token file (STATE/token, see the serve log)"
		if !explicit {
			err = fmt.Errorf("no token: %w (the default for a serve with the default --state)", err)
		}
		return nil, exitcode.Errorf(exitcode.Usage, "%v\n  fix: %s", err, fix)
	}
	from := "the token file " + tokenFile
	if !explicit {
		from += " (the default, for a serve with the default --state)"
	}
	c, err := client.New(client.Options{Server: server, Token: token, CAFile: cn.caFile, TokenFrom: from})
	if err != nil {
		return nil, exitcode.New(exitcode.Usage, err)
	}
	return c, nil
}

func (o Options) defaults() *Options {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.IsTerminal == nil {
		o.IsTerminal = func(io.Writer) bool { return false }
	}
	return &o
}

// Graphs returns `schnitzel graphs` (ls, get, apply, rm, start, stop, restart).
func Graphs(o Options) *cobra.Command { return o.defaults().graphsCommand() }

// Tap returns `schnitzel tap GRAPH NODE`.
func Tap(o Options) *cobra.Command { return o.defaults().tapCommand() }

// Top returns `schnitzel top`.
func Top(o Options) *cobra.Command { return o.defaults().topCommand() }

// Fleet returns `schnitzel fleet start|stop|status`.
func Fleet(o Options) *cobra.Command { return o.defaults().fleetCommand() }

// failure maps an API or transport error to exit 1 (the server said no,
// or is not there); errors that already carry a code keep it.
func failure(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitcode.Error
	if errors.As(err, &ee) {
		return err
	}
	return exitcode.New(exitcode.Runtime, err)
}

// signalContext ends when ctx does or a signal arrives.
func (o *Options) signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if o.Signals != nil {
		go func() {
			select {
			case <-o.Signals:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if max > 3 && len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}
