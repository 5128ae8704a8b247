//go:build !unix

package blob

import "io/fs"

// links returns 1: the link count is not checked on this platform.
func links(fs.FileInfo) uint64 { return 1 }
