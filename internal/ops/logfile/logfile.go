// Package logfile provides the --log-file writer (size-based rotation with
// retention) and secret masking for log output. Upstream's legacy runtime
// rotated at 10 MiB keeping 5 backups (AI_LOG_MAX_BYTES, AI_LOG_BACKUP_COUNT);
// those are our defaults.
package logfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Defaults, from upstream's legacy logging settings.
const (
	DefaultMaxSizeMB  = 10
	DefaultMaxBackups = 5
)

// Options configure a rotating log file.
type Options struct {
	// Path of the live log file. Backups are written beside it as
	// name-<timestamp>.ext.
	Path string
	// MaxSizeMB rotates the file when a write would pass this size
	// (default DefaultMaxSizeMB).
	MaxSizeMB int
	// MaxBackups is how many rotated files are kept (default
	// DefaultMaxBackups).
	MaxBackups int
	// MaxAgeDays deletes rotated files older than this (0 keeps them by count only).
	MaxAgeDays int
	// Compress gzips rotated files.
	Compress bool
}

// Open creates the log directory (0750) and returns a rotating writer. The
// file is opened (and created, 0600) at once, so a bad path or missing
// permission is reported here rather than at the first log line.
func Open(o Options) (io.WriteCloser, error) {
	if o.Path == "" {
		return nil, errors.New("log file: empty path")
	}
	if o.MaxSizeMB == 0 {
		o.MaxSizeMB = DefaultMaxSizeMB
	}
	if o.MaxSizeMB < 0 {
		return nil, fmt.Errorf("log file %s: max size %d MB must be positive", o.Path, o.MaxSizeMB)
	}
	if o.MaxBackups == 0 {
		o.MaxBackups = DefaultMaxBackups
	}
	if o.MaxBackups < 0 {
		return nil, fmt.Errorf("log file %s: max backups %d must not be negative", o.Path, o.MaxBackups)
	}
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", o.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("log file %s: create directory: %w", abs, err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("log file %s: is a directory", abs)
	}
	// Probe: lumberjack opens lazily; open once so errors surface now.
	f, err := os.OpenFile(abs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", abs, err)
	}
	f.Close()
	return &lumberjack.Logger{
		Filename:   abs,
		MaxSize:    o.MaxSizeMB,
		MaxBackups: o.MaxBackups,
		MaxAge:     o.MaxAgeDays,
		Compress:   o.Compress,
		LocalTime:  false,
	}, nil
}
