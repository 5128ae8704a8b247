package queue

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
)

// Kinds of queue failure, for errors.Is. Every error the package returns
// names the queue file.
var (
	ErrNotQueue    = errors.New("not a schnitzel queue")
	ErrCorrupt     = errors.New("file is not an SQLite database or is corrupt")
	ErrReadOnly    = errors.New("queue file is not writable")
	ErrFull        = errors.New("disk or database full; nothing of this commit was written")
	ErrNewerSchema = errors.New("queue file was written by a newer schnitzel")
	ErrClosed      = errors.New("queue is closed")
	ErrTooLarge    = errors.New("record larger than max_bytes")
	ErrNotExist    = errors.New("queue file does not exist")
	ErrEmptyKey    = errors.New("idempotency key is empty")
	ErrNotPortable = errors.New("packet is not JSON-portable")
	ErrBusy        = errors.New("queue file is locked by another process (busy timeout)")
	// ErrCantOpen: SQLite could not open the file or the -wal/-shm files
	// it keeps beside it for writing; on an existing file that is almost
	// always a read-only file, directory or mount.
	ErrCantOpen = errors.New("cannot open the queue file, or its -wal/-shm beside it, for writing (read-only file, directory or filesystem?)")
)

// Error is a failure of one operation on one queue file.
type Error struct {
	Path string // the queue file as given to Open (":memory:" for memory)
	Op   string // open, enqueue, lease, ack, ...
	Kind error  // one of the Err* values above, or nil
	Err  error  // the underlying cause, or nil
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("queue %s: %s", e.Path, e.Op)
	if e.Kind != nil {
		msg += ": " + e.Kind.Error()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// SQLite primary result codes the package maps to kinds.
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteCorrupt  = 11
	sqliteFull     = 13
	sqliteCantOpen = 14
	sqliteNotADB   = 26
)

// sqliteCode returns the primary SQLite result code in err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// isSQLite reports whether err came from SQLite (and so poisons the
// transaction it happened in).
func isSQLite(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se)
}

// wrap turns err into an *Error naming path and op, classifying SQLite
// result codes.
func wrap(path, op string, err error) error {
	if err == nil {
		return nil
	}
	var qe *Error
	if errors.As(err, &qe) {
		return err
	}
	var kind error
	switch sqliteCode(err) {
	case sqliteFull:
		kind = ErrFull
	case sqliteReadOnly:
		kind = ErrReadOnly
	case sqliteNotADB, sqliteCorrupt:
		kind = ErrCorrupt
	case sqliteBusy, sqliteLocked:
		kind = ErrBusy
	case sqliteCantOpen:
		kind = ErrCantOpen
	}
	return &Error{Path: path, Op: op, Kind: kind, Err: err}
}
