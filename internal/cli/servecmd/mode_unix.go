//go:build !windows

package servecmd

func modeBitsMeaningful() bool { return true }
