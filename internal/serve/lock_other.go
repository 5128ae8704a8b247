//go:build !unix && !windows

package serve

import "os"

// lockExclusive: no advisory lock on this platform (js, wasip1, plan9);
// the operator must not start two servers on one state directory.
func lockExclusive(*os.File) (bool, error) { return false, nil }

func unlock(*os.File) error { return nil }
