//go:build !linux && !darwin && !freebsd && !windows

package doctor

import (
	"errors"
	"runtime"
)

func diskFree(string) (uint64, uint64, error) {
	return 0, 0, errors.New("free space is not implemented on " + runtime.GOOS)
}
