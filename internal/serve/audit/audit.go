// Package audit is the control plane's audit log: one JSON line per
// mutation or refused request, fsync'd before the request is answered,
// rotated by size (file, file.1, ... file.N).
package audit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Event is one audit line. Field names are upstream's (spec control.md §1).
type Event struct {
	EventID   string         `json:"event_id"`
	TS        string         `json:"ts"` // RFC 3339, UTC, milliseconds
	Actor     string         `json:"actor"`
	Action    string         `json:"action"` // e.g. graph.apply, graph.stop, auth.refused
	Target    string         `json:"target"`
	Status    string         `json:"status"` // ok, refused, error
	Reason    string         `json:"reason,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Meta      map[string]any `json:"meta,omitempty"`
}

// Time parses TS (zero when it does not parse).
func (e Event) Time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.TS)
	return t
}

// Defaults as upstream's SS_AUDIT_MAX_BYTES / SS_AUDIT_MAX_FILES.
const (
	DefaultMaxBytes = 10 << 20
	DefaultMaxFiles = 5
)

// Log appends events to a file. It is safe for concurrent use.
type Log struct {
	path     string
	maxBytes int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (creating, mode 0600) the audit log at path. maxBytes <= 0
// and maxFiles <= 0 take the defaults.
func Open(path string, maxBytes int64, maxFiles int) (*Log, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	l := &Log{path: path, maxBytes: maxBytes, maxFiles: maxFiles}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Path is the log file.
func (l *Log) Path() string { return l.path }

// NewID returns a random id for events and requests.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Append writes e (EventID and TS filled in when empty) and syncs it to
// disk before returning.
func (l *Log) Append(e Event) error {
	if e.EventID == "" {
		e.EventID = NewID()
	}
	if e.TS == "" {
		e.TS = time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("audit log %s is closed", l.path)
	}
	if l.size > 0 && l.size+int64(len(line)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// rotate shifts path.N-1 → path.N ... path → path.1 and reopens path.
func (l *Log) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l.f = nil
	for i := l.maxFiles - 1; i >= 1; i-- {
		from := l.path
		if i > 1 {
			from = fmt.Sprintf("%s.%d", l.path, i-1)
		}
		if err := os.Rename(from, fmt.Sprintf("%s.%d", l.path, i)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("audit log rotate: %w", err)
		}
	}
	return l.open()
}

// Tail returns the newest events at or after since (zero: all), oldest
// first, at most limit (<= 0: 100), reading the rotated files as needed.
func (l *Log) Tail(since time.Time, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	files := []string{l.path}
	for i := 1; i < l.maxFiles; i++ {
		files = append(files, fmt.Sprintf("%s.%d", l.path, i))
	}
	for _, p := range files {
		evs, err := readFile(p)
		if err != nil {
			return nil, err
		}
		var keep []Event
		for _, e := range evs {
			if since.IsZero() || !e.Time().Before(since) {
				keep = append(keep, e)
			}
		}
		out = append(keep, out...)
		if len(out) >= limit || len(keep) < len(evs) {
			break
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return slices.Clip(out), nil
}

func readFile(p string) ([]Event, error) {
	data, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
