//go:build !linux

package cli

func growStdoutPipe() {}
