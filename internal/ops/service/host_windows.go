//go:build windows

package service

import "golang.org/x/sys/windows"

func isAdmin() bool { return windows.GetCurrentProcessToken().IsElevated() }
