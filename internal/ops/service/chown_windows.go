//go:build windows

package service

// chown is not used on Windows: access is granted with ACLs (icacls).
func (in *Installer) chown(p, owner string, rb *rollback) error { return nil }
