package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

// SchemaVersion is the version of the additive tables this build writes.
// A file with a higher version is refused rather than misread.
const SchemaVersion = 1

// packetsDDL is upstream's table, column for column.
const packetsDDL = `CREATE TABLE IF NOT EXISTS packets (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  enqueued_at TEXT NOT NULL,
  idempotency_key TEXT,
  packet_id TEXT NOT NULL,
  ts TEXT NOT NULL,
  kind TEXT NOT NULL,
  source_id TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  meta_json TEXT NOT NULL
)`

var ourDDL = []string{
	`CREATE TABLE IF NOT EXISTS schnitzel_queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`,
	// lease_until / not_before are unix milliseconds. A packets row without
	// a state row is fresh (never leased), which is how rows the Python
	// project enqueued look.
	`CREATE TABLE IF NOT EXISTS schnitzel_queue_state (
  seq INTEGER PRIMARY KEY,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_until INTEGER,
  lease_owner TEXT,
  not_before INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  acked INTEGER NOT NULL DEFAULT 0,
  acked_until INTEGER
)`,
	// acked = 1: the row is acknowledged (durably) but its packets row is
	// not deleted yet; compaction deletes such rows in bulk, because
	// deleting rows one commit at a time rewrites the pages of both
	// random-keyed indexes for every few rows.
	`CREATE INDEX IF NOT EXISTS idx_schnitzel_queue_state_acked ON schnitzel_queue_state(acked) WHERE acked = 1`,
	`CREATE TABLE IF NOT EXISTS schnitzel_queue_dead (
  seq INTEGER PRIMARY KEY,
  enqueued_at TEXT NOT NULL,
  idempotency_key TEXT,
  packet_id TEXT NOT NULL,
  ts TEXT NOT NULL,
  kind TEXT NOT NULL,
  source_id TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  meta_json TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  dead_at INTEGER NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS idx_schnitzel_queue_dead_at ON schnitzel_queue_dead(dead_at)`,
	`CREATE TABLE IF NOT EXISTS schnitzel_queue_dedup (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, until INTEGER NOT NULL) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS idx_schnitzel_queue_dedup_until ON schnitzel_queue_dedup(until)`,
}

// newFilePageSize is the page size of files this build creates. Any page
// size is the same format to SQLite (and to the Python project). 8 KiB:
// bulk enqueue ~30% faster than SQLite's 4 KiB default (fewer B-tree
// splits under random idempotency keys); 16 KiB gained another ~15% there
// but made small commits (1-100 rows, the usual edge trickle) ~20% slower.
const newFilePageSize = 8192

var packetColumns = []string{"seq", "enqueued_at", "packet_id", "ts", "kind", "source_id", "payload_json", "meta_json"}

func (c *core) initSchema(ctx context.Context, opts Options) error {
	x := func(q string) error {
		_, err := c.conn.ExecContext(ctx, q)
		return err
	}
	if err := x(fmt.Sprintf("PRAGMA busy_timeout=%d", opts.BusyTimeout.Milliseconds())); err != nil {
		return err
	}
	// Look before writing anything: a file that is not a queue is refused
	// untouched.
	tables, err := c.tables(ctx)
	if err != nil {
		return err
	}
	if len(tables) > 0 {
		if !slices.Contains(tables, "packets") {
			return &Error{Path: c.path, Op: "open", Kind: ErrNotQueue,
				Err: fmt.Errorf("SQLite database without a packets table (tables: %s)", strings.Join(tables, ", "))}
		}
		cols, err := c.columns(ctx, "packets")
		if err != nil {
			return err
		}
		for _, want := range packetColumns {
			if !slices.Contains(cols, want) {
				return &Error{Path: c.path, Op: "open", Kind: ErrNotQueue,
					Err: fmt.Errorf("packets table lacks column %s (has %s)", want, strings.Join(cols, ", "))}
			}
		}
		if slices.Contains(tables, "schnitzel_queue_meta") {
			var v string
			err := c.conn.QueryRowContext(ctx, `SELECT value FROM schnitzel_queue_meta WHERE key='schema_version'`).Scan(&v)
			if err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n > SchemaVersion {
					return &Error{Path: c.path, Op: "open", Kind: ErrNewerSchema,
						Err: fmt.Errorf("schema version %s, this build supports up to %d", v, SchemaVersion)}
				}
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
	}
	if len(tables) > 0 {
		if err := c.quickCheck(ctx, opts); err != nil {
			return err
		}
	}
	if len(tables) == 0 {
		// A new file (see newFilePageSize). Must precede the first write
		// (the switch to WAL); an existing file keeps its page size.
		if err := x(fmt.Sprintf("PRAGMA page_size=%d", newFilePageSize)); err != nil {
			return err
		}
	}
	if c.key != ":memory:" {
		var mode string
		if err := c.conn.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
			return err
		}
		if !strings.EqualFold(mode, "wal") {
			return &Error{Path: c.path, Op: "open", Kind: ErrReadOnly, Err: fmt.Errorf("cannot switch to WAL mode (journal_mode is %s)", mode)}
		}
	}
	// A group commit of thousands of rows dirties many index pages (keys
	// are random UUIDs); a cache that holds them avoids spilling pages to
	// the WAL twice within one transaction.
	if err := x("PRAGMA cache_size=-32768"); err != nil {
		return err
	}
	if err := x("PRAGMA synchronous=" + opts.Synchronous); err != nil {
		return err
	}
	if opts.MaxPageCount > 0 {
		if err := x(fmt.Sprintf("PRAGMA max_page_count=%d", opts.MaxPageCount)); err != nil {
			return err
		}
	}
	if err := x("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err = c.createTables(ctx)
	if err == nil {
		err = x("COMMIT")
	}
	if err != nil {
		_ = x("ROLLBACK")
		return err
	}
	if err := c.conn.QueryRowContext(ctx, `SELECT value FROM schnitzel_queue_meta WHERE key='queue_id'`).Scan(&c.id); err != nil {
		return err
	}
	if err := c.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&c.dataVersion); err != nil {
		return err
	}
	t := &txn{c: c, conn: c.conn, ctx: ctx}
	return t.recount(opts.MaxBytes > 0) // summing bytes reads every row: only when bounded by bytes
}

// quickCheckBudget bounds the quick_check at open: past it the check is
// abandoned (a huge file) and the file is used unchecked.
var quickCheckBudget = 2 * time.Second

// quickCheck runs SQLite's quick_check before anything is delivered or
// buried: a damaged page would otherwise make rows vanish from leases or
// go to the dead letters as undecodable.
func (c *core) quickCheck(ctx context.Context, opts Options) error {
	qctx, cancel := context.WithTimeout(ctx, quickCheckBudget)
	defer cancel()
	rows, err := c.conn.QueryContext(qctx, "PRAGMA quick_check(20)")
	var found []string
	if err == nil {
		for rows.Next() {
			var s string
			if err = rows.Scan(&s); err != nil {
				break
			}
			found = append(found, s)
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
	}
	if err != nil && qctx.Err() != nil && ctx.Err() == nil {
		opts.Logger.Debug("queue quick_check skipped: the file is too large to check within the budget",
			"path", c.path, "budget", quickCheckBudget)
		return nil
	}
	if err != nil {
		if sqliteCode(err) == sqliteCorrupt || sqliteCode(err) == sqliteNotADB {
			return &Error{Path: c.path, Op: "open", Kind: ErrCorrupt, Err: fmt.Errorf("quick_check: %w", err)}
		}
		return err
	}
	if len(found) != 1 || found[0] != "ok" {
		return &Error{Path: c.path, Op: "open", Kind: ErrCorrupt,
			Err: fmt.Errorf("quick_check found damage (nothing was delivered or changed; restore the file or run `schnitzel queue stats --check`): %s", strings.Join(found, "; "))}
	}
	return nil
}

// initReadOnly checks that a file opened read-only is a queue and reads
// its id and counts, writing nothing (a file without our tables has no
// id: "").
func (c *core) initReadOnly(ctx context.Context, opts Options) error {
	if _, err := c.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout=%d", opts.BusyTimeout.Milliseconds())); err != nil {
		return err
	}
	tables, err := c.tables(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, "packets") {
		return &Error{Path: c.path, Op: "open", Kind: ErrNotQueue,
			Err: fmt.Errorf("SQLite database without a packets table (tables: %s)", strings.Join(tables, ", "))}
	}
	ours := slices.Contains(tables, "schnitzel_queue_meta")
	if ours {
		var v string
		err := c.conn.QueryRowContext(ctx, `SELECT value FROM schnitzel_queue_meta WHERE key='schema_version'`).Scan(&v)
		if err == nil {
			if n, perr := strconv.Atoi(v); perr != nil || n > SchemaVersion {
				return &Error{Path: c.path, Op: "open", Kind: ErrNewerSchema,
					Err: fmt.Errorf("schema version %s, this build supports up to %d", v, SchemaVersion)}
			}
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		err = c.conn.QueryRowContext(ctx, `SELECT value FROM schnitzel_queue_meta WHERE key='queue_id'`).Scan(&c.id)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	// A file only the Python project wrote has none of our tables: empty
	// TEMP stand-ins (in memory, not in the file) let every read run.
	for _, q := range ourDDL {
		if !strings.HasPrefix(q, "CREATE TABLE IF NOT EXISTS ") {
			continue
		}
		name := strings.Fields(strings.TrimPrefix(q, "CREATE TABLE IF NOT EXISTS "))[0]
		if slices.Contains(tables, name) {
			continue
		}
		if _, err := c.conn.ExecContext(ctx, strings.Replace(q, "CREATE TABLE", "CREATE TEMP TABLE", 1)); err != nil {
			return err
		}
	}
	if _, err := c.conn.ExecContext(ctx, "PRAGMA query_only=1"); err != nil {
		return err
	}
	t := &txn{c: c, conn: c.conn, ctx: ctx}
	return t.recount(false)
}

func (c *core) createTables(ctx context.Context) error {
	x := func(q string, args ...any) error {
		_, err := c.conn.ExecContext(ctx, q, args...)
		return err
	}
	if err := x(packetsDDL); err != nil {
		return err
	}
	cols, err := c.columns(ctx, "packets")
	if err != nil {
		return err
	}
	if !slices.Contains(cols, "idempotency_key") {
		// Files from upstream's early Phase 2 drafts: same migration as
		// upstream (key = packet_id).
		if err := x("ALTER TABLE packets ADD COLUMN idempotency_key TEXT"); err != nil {
			return err
		}
		if err := x("UPDATE packets SET idempotency_key = packet_id WHERE idempotency_key IS NULL OR idempotency_key = ''"); err != nil {
			return err
		}
	}
	for _, q := range []string{
		"CREATE INDEX IF NOT EXISTS idx_packets_packet_id ON packets(packet_id)",
		"CREATE UNIQUE INDEX IF NOT EXISTS idx_packets_idempotency ON packets(idempotency_key)",
	} {
		if err := x(q); err != nil {
			return err
		}
	}
	for _, q := range ourDDL {
		if err := x(q); err != nil {
			return err
		}
	}
	stCols, err := c.columns(ctx, "schnitzel_queue_state")
	if err != nil {
		return err
	}
	if !slices.Contains(stCols, "handed") {
		// handed > 0: when (unix ms) the source emitted the row to the
		// graph; a death of its owner is charged to the oldest of these
		// (deathCharge), never to rows only read ahead. Additive: older
		// builds ignore it.
		if err := x("ALTER TABLE schnitzel_queue_state ADD COLUMN handed INTEGER NOT NULL DEFAULT 0"); err != nil {
			return err
		}
	}
	// No index on lease_owner: keeping one costs every lease and ack
	// ~5% (BenchmarkDrainAck); the state table holds only leased,
	// retried and not yet compacted rows, which renewal and sweeps (every
	// lease_sec/3) scan cheaply.
	if err := x(`INSERT OR IGNORE INTO schnitzel_queue_meta(key, value) VALUES ('queue_id', ?)`, packet.NewID()); err != nil {
		return err
	}
	if err := x(`INSERT OR IGNORE INTO schnitzel_queue_meta(key, value) VALUES ('schema_version', ?)`, strconv.Itoa(SchemaVersion)); err != nil {
		return err
	}
	return x(`INSERT OR IGNORE INTO schnitzel_queue_meta(key, value) VALUES ('created_at', ?)`, packet.Now())
}

func (c *core) tables(ctx context.Context) ([]string, error) {
	return c.names(ctx, `SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
}

func (c *core) columns(ctx context.Context, table string) ([]string, error) {
	return c.names(ctx, "SELECT name FROM pragma_table_info(?)", table)
}

// names runs a query of one text column and returns its values.
func (c *core) names(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := c.conn.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
