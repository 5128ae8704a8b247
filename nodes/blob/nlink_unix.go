//go:build unix

package blob

import (
	"io/fs"
	"syscall"
)

// links returns the file's hard link count, 1 when it cannot tell.
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
