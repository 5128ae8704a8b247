//go:build !linux

package video

func peakRSS() int64 { return 0 }
