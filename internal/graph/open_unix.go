//go:build unix

package graph

import (
	"os"
	"syscall"
	"time"
)

// openGraph opens path for reading without blocking on a named pipe that has
// no writer (open(2) of a FIFO waits for one forever). A FIFO, tty or other
// non-regular file gets a read deadline, so a writer that never writes
// cannot hold the loader either; a pipe fed by a running process
// (--graph /dev/stdin, <(...)) still works.
func openGraph(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		_ = f.SetReadDeadline(time.Now().Add(nonRegularReadTimeout)) // not pollable: no deadline
	}
	return f, nil
}
