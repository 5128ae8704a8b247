package paths

import "os"

// Default returns the host's paths (linux layout).
func Default(user bool) (Paths, error) { return For("linux", user, os.Getenv) }
