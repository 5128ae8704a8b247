//go:build linux || darwin || freebsd

package doctor

import "golang.org/x/sys/unix"

func diskFree(path string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	// Bavail: blocks available to unprivileged users (root's reserve excluded).
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), nil
}
