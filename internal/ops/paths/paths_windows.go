package paths

import "os"

// Default returns the host's paths (windows layout).
func Default(user bool) (Paths, error) { return For("windows", user, os.Getenv) }
