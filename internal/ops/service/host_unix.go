//go:build !windows

package service

import "os"

func isAdmin() bool { return os.Geteuid() == 0 }
