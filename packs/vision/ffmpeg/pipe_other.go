//go:build !linux

package ffmpeg

import "os"

// growPipe is a no-op where pipe capacity cannot be changed.
func growPipe(*os.File) {}

// childMaxRSS is unknown here.
func childMaxRSS(*os.ProcessState) int64 { return 0 }
