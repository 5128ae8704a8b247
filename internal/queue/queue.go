// Package queue is a durable store-and-forward queue in one SQLite file
// (WAL mode), on the pure-Go modernc.org/sqlite driver. It knows nothing
// about graphs or plugins: it stores packets and hands them to readers.
//
// File format. The packets table has the Python project's exact schema and
// column meanings (seq AUTOINCREMENT, enqueued_at, idempotency_key UNIQUE,
// packet_id, ts, kind, source_id, payload_json, meta_json), so either
// implementation drains a file the other wrote. Everything else lives in
// additive tables that the Python code never touches:
//
//	schnitzel_queue_meta   queue_id (UUID) and schema_version
//	schnitzel_queue_state  per-row leases, failed attempts, retry time, last error
//	schnitzel_queue_dead   dead letters (the packets columns plus attempts, error, time)
//	schnitzel_queue_dedup  idempotency keys of acked rows, kept for the dedup window
//
// Guarantees. Enqueue returns only after the transaction holding its rows
// has committed (synchronous=FULL by default: the commit is on disk).
// Concurrent enqueues, leases, acks and nacks on one file in one process
// share a connection and one writer goroutine, which commits everything
// that is waiting in one transaction: one fsync per group, not per row
// (group commit). A leased row is hidden from every other reader, in this
// or another process, until it is acked, nacked or released. Leases
// belong to an owner that holds a lock file while it lives (owner.go,
// lock.go): a live owner renews them, a dead owner's rows are taken back
// at once, charged an attempt only if the owner was delivering them, so
// a row that crashes its reader ends in the dead-letter table after
// max_attempts while rows only read ahead are never charged.
//
// Files, by verb: options.go, handle.go (Open, Close, counters), writer.go
// (the writer goroutine and group commit), txn.go (the transaction core),
// enqueue.go, lease.go, ack.go (ack and nack), dead.go (dead letters),
// compact.go, owner.go (lease owners), admin.go (stats, peek, requeue,
// purge, check), schema.go, record.go, errors.go, lock*.go.
//
// Lock order: pool.mu before core.mu; neither is held while waiting for
// the writer goroutine.
package queue

import (
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)
