// Package logbuf holds Buffer, a bytes buffer safe for concurrent writers:
// the one way tests and test servers collect what a logger or a child
// process writes while they read it.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer is an in-memory io.Writer whose String may be called while other
// goroutines write. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
