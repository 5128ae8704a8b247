//go:build !linux && !darwin && !windows

package paths

import (
	"os"
	"runtime"
)

// Default returns the host's paths; Unix systems other than Linux and macOS
// use the FHS/XDG layout.
func Default(user bool) (Paths, error) { return For(runtime.GOOS, user, os.Getenv) }
