//go:build unix

package lines

import (
	"os"
	"syscall"
)

// idOf is the file's device and inode: what stays the same across a
// rename, so a rotated file is still known.
func idOf(fi os.FileInfo, _ string) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)} //nolint:unconvert // the field types differ by platform
	}
	return fileID{}
}
