//go:build windows

package cli

func ignoreSIGPIPE() {}
