//go:build !windows

package service

import (
	"fmt"
	"os"
	"syscall"
)

// chown gives p to owner, restoring the previous owner on rollback.
func (in *Installer) chown(p, owner string, rb *rollback) error {
	uid, gid, err := in.Host.LookupUser(owner)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no ownership information", p)
	}
	oldUID, oldGID := int(st.Uid), int(st.Gid)
	if oldUID == uid && oldGID == gid {
		return nil
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		return err
	}
	rb.add(fmt.Sprintf("chown %d:%d %s", oldUID, oldGID, p), func() error { return os.Lchown(p, oldUID, oldGID) })
	return nil
}
