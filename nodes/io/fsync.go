package ionodes

import "path/filepath"

// Fsync policies of the file sinks.
const (
	fsyncAlways = "always" // after every packet
	fsyncBatch  = "batch"  // once per batch the runtime hands over, and on close
	fsyncNever  = "never"  // leave it to the OS
)

// parentDir is the directory holding path ("." for a bare name).
func parentDir(path string) string { return filepath.Dir(path) }
