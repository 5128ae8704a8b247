package paths

import "os"

// Default returns the host's paths (darwin layout).
func Default(user bool) (Paths, error) { return For("darwin", user, os.Getenv) }
