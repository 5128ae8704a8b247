// Options: the knobs of a queue handle, their defaults and validation.

package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Overflow policies for a bounded queue.
const (
	OverflowBlock      = "block"       // Enqueue waits for room (ctx-cancellable)
	OverflowDropOldest = "drop_oldest" // the oldest rows are deleted to make room (counted)
)

// Options tunes a queue handle. The zero value is usable: see the defaults.
type Options struct {
	// Synchronous is the SQLite synchronous level: "FULL" (default: every
	// commit is on disk when Enqueue returns) or "NORMAL" (WAL commits may
	// be lost on power failure, never corrupted). Handles sharing a file in
	// one process use the strongest level any of them asked for.
	Synchronous string
	// BusyTimeout is how long a statement waits for another process's
	// lock on the file (default 30s, as upstream's sqlite3 timeout).
	BusyTimeout time.Duration
	// MaxRows and MaxBytes bound the queued rows (0 = unbounded). Bytes
	// count the stored text of a row (payload, meta, ids, kind, ts).
	MaxRows  int64
	MaxBytes int64
	// Overflow is what Enqueue does at a bound: OverflowBlock (default) or
	// OverflowDropOldest.
	Overflow string
	// DedupWindow is how long an idempotency key stays known after its row
	// was acked, so a replay is not enqueued again (default 24h; negative
	// disables).
	DedupWindow time.Duration
	// MaxAttempts is how many failed deliveries (nacks or expired leases)
	// move a row to the dead-letter table (default 5).
	MaxAttempts int
	// RetryBackoff is the delay before a nacked row is offered again; it
	// doubles per failed attempt up to RetryBackoffMax (defaults 1s, 5m).
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
	// DeadRetention is how long dead letters are kept (default 7 days;
	// negative keeps them until purged).
	DeadRetention time.Duration
	// MaxPageCount, if > 0, caps the file size in pages (PRAGMA
	// max_page_count): an operator's disk quota, and how tests fill the
	// "disk".
	MaxPageCount int64
	// MustExist makes Open fail with ErrNotExist instead of creating the
	// file (admin commands).
	MustExist bool
	// Private gives this handle its own connection and writer instead of
	// sharing the process-wide one for the file: tests use it to act as
	// a second process.
	Private bool
	// Consumer names the reader: its leases are stored under this name
	// and it holds the name's lock file (see lock.go) while open, so Open
	// fails with ErrConsumerBusy when a live process already uses the
	// name, and rows a dead run of the same name left leased are taken
	// back at once. Empty: a random name, locked at the first lease.
	Consumer string
	// ReadOnly opens the file without writing anything (mode=ro, and
	// immutable=1 when the directory does not allow SQLite's shared
	// memory file): admin commands that only read. Implies Private and
	// MustExist.
	ReadOnly bool
	// Acks marks a handle that acks rows (the ack sink): a reader on the
	// same file in this process then windows its leases (MaxInFlight in
	// the source), knowing that acks will free the window.
	Acks bool
	// OnDead, if set, is told of every row this handle moved to the
	// dead-letter table, after the commit (from the writer goroutine: it
	// must not use the queue).
	OnDead func(seq int64, reason string)
	// Logger receives debug notes (a skipped quick_check); may be nil.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Synchronous == "" {
		o.Synchronous = "FULL"
	}
	o.Synchronous = strings.ToUpper(o.Synchronous)
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 30 * time.Second
	}
	if o.Overflow == "" {
		o.Overflow = OverflowBlock
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = 24 * time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	if o.RetryBackoffMax < o.RetryBackoff {
		o.RetryBackoffMax = max(o.RetryBackoff, 5*time.Minute)
	}
	if o.DeadRetention == 0 {
		o.DeadRetention = 7 * 24 * time.Hour
	}
	if o.ReadOnly {
		o.Private, o.MustExist = true, true
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	switch o.Synchronous {
	case "FULL", "NORMAL", "EXTRA":
	default:
		return fmt.Errorf("synchronous must be FULL or NORMAL, got %q", o.Synchronous)
	}
	switch o.Overflow {
	case OverflowBlock, OverflowDropOldest:
	default:
		return fmt.Errorf("overflow must be %s or %s, got %q", OverflowBlock, OverflowDropOldest, o.Overflow)
	}
	if o.MaxRows < 0 || o.MaxBytes < 0 {
		return errors.New("max_rows and max_bytes must be >= 0")
	}
	return nil
}
