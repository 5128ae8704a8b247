package execnodes

import "github.com/schnitzel-stream/schnitzel/plugin"

func pythonFallback(name, dir string) (*plugin.Entry, error) { return nil, nil }
