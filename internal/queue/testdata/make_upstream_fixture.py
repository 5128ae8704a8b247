"""Writes upstream_seed.sqlite3 with the Python project's own SqliteQueue.

Run from the repository root (needs the upstream source tree):

    PYTHONPATH=/work/upstream/seed/src python3 internal/queue/testdata/make_upstream_fixture.py

The Go tests check that schnitzel drains this file exactly as upstream
wrote it (compat_test.go, TestCompatDrainUpstreamFile).
"""

import os
import sys

from schnitzel_stream.packet import StreamPacket
from schnitzel_stream.state.sqlite_queue import SqliteQueue

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upstream_seed.sqlite3")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(out + suffix):
        os.remove(out + suffix)

q = SqliteQueue(out)
packets = [
    StreamPacket(packet_id="00000000-0000-4000-8000-000000000001", ts="2026-02-14T10:00:00+00:00",
                 kind="demo", source_id="demo01", payload={"message": "durable enqueue", "value": 1}, meta={}),
    StreamPacket(packet_id="00000000-0000-4000-8000-000000000002", ts="2026-02-14T10:00:01.250000+00:00",
                 kind="event", source_id="cam01",
                 payload={"text": "caf\u00e9 \u2603 \U0001F600", "nested": [1, 2.5, None, True, {"k": "v"}],
                          "nan": float("nan"), "inf": float("inf"), "big": 2**70, "neg": -3},
                 meta={"idempotency_key": "event:cam01:1", "z": 1, "a": 2}),
    StreamPacket(packet_id="00000000-0000-4000-8000-000000000003", ts="2026-02-14T10:00:02+00:00",
                 kind="raw", source_id="s", payload="just a string",
                 meta={"durable": {"queue": "sqlite", "path": "old.sqlite3", "seq": 7, "node_id": "q"}}),
    # Same meta key as the second packet: upstream dedups it (no new row).
    StreamPacket(packet_id="00000000-0000-4000-8000-000000000004", ts="2026-02-14T10:00:03+00:00",
                 kind="event", source_id="cam01", payload={"text": "duplicate"},
                 meta={"idempotency_key": "event:cam01:1"}),
    StreamPacket(packet_id="00000000-0000-4000-8000-000000000005", ts="2026-02-14T10:00:04+00:00",
                 kind="demo", source_id="demo01", payload=[1, "two", 3.0], meta={"idempotency_key": 42}),
]
seqs = [q.enqueue(p) for p in packets]
# An ignored INSERT still advances AUTOINCREMENT in SQLite, hence 5.
assert seqs == [1, 2, 3, 2, 5], seqs
# Upstream acks by deleting: leave a gap so seq order, not density, matters.
q.enqueue(StreamPacket(packet_id="00000000-0000-4000-8000-000000000006", ts="2026-02-14T10:00:05+00:00",
                       kind="demo", source_id="demo01", payload={}, meta={}))
assert q.ack(seq=6)
q.close()
# Fold the WAL into the main file so the fixture is a single file.
import sqlite3
c = sqlite3.connect(out)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
c.execute("PRAGMA journal_mode=DELETE")
c.close()
print(out, file=sys.stderr)
