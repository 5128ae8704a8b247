package servecmd

import (
	"os"
	"path/filepath"
	"runtime"

	"github.com/schnitzel-stream/schnitzel/internal/ops/paths"
)

// Dirs are serve's default directories on this host.
type Dirs struct {
	Graphs string // <config>/graphs.d
	State  string // <state>/serve
}

// DefaultDirs are the config and state path classes' serve directories:
// system-wide when running as root (the system service), else the user's
// (XDG, ~/Library, %LOCALAPPDATA%), so that serve and the client commands
// run by the same account agree on the token file without flags.
func DefaultDirs(getenv func(string) string) (Dirs, error) {
	user := runtime.GOOS == "windows" || os.Geteuid() != 0
	p, err := paths.For(runtime.GOOS, user, getenv)
	if err != nil {
		return Dirs{}, err
	}
	return Dirs{Graphs: filepath.Join(p.Config, "graphs.d"), State: filepath.Join(p.State, "serve")}, nil
}

// TokenFileName is the generated token's file in the state directory.
const TokenFileName = "token"
