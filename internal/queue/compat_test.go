package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schnitzel-stream/schnitzel/packet"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCompatDrainUpstreamFile drains a file written by the Python project's
// SqliteQueue (testdata/make_upstream_fixture.py).
func TestCompatDrainUpstreamFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "upstream.sqlite3")
	copyFile(t, "testdata/upstream_seed.sqlite3", p)
	q, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	ms := mustLease(t, q, 100, time.Minute)
	if got := seqsOf(ms); len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 5 {
		t.Fatalf("seqs %v, want [1 2 3 5]", got)
	}
	m := ms[1].Packet
	if m.ID != "00000000-0000-4000-8000-000000000002" || m.TS != "2026-02-14T10:00:01.250000+00:00" || m.Kind != "event" || m.SourceID != "cam01" {
		t.Fatalf("packet fields %+v", m)
	}
	pl := m.Payload.(*packet.Map)
	if s, _ := pl.GetString("text"); s != "café ☃ 😀" {
		t.Fatalf("text %q", s)
	}
	if v, _ := pl.Get("nan"); !math.IsNaN(v.(float64)) {
		t.Fatalf("nan %v", v)
	}
	if v, _ := pl.Get("inf"); !math.IsInf(v.(float64), 1) {
		t.Fatalf("inf %v", v)
	}
	if v, _ := pl.Get("big"); v.(*big.Int).String() != "1180591620717411303424" {
		t.Fatalf("big %v", v)
	}
	if got := strings.Join(m.Meta.Keys(), ","); got != "idempotency_key,z,a" {
		t.Fatalf("meta key order %s", got)
	}
	if ms[1].Key != "event:cam01:1" || ms[3].Key != "42" {
		t.Fatalf("keys %q %q", ms[1].Key, ms[3].Key)
	}
	// Re-encoding gives upstream's bytes back.
	r, err := RecordOf(m, "")
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	q.do(ctx, false, func(tx *txn) error {
		return tx.queryRow(`SELECT payload_json FROM packets WHERE seq = 2`).Scan(&stored)
	})
	if r.Payload != stored {
		t.Fatalf("re-encoded payload\n%s\nstored\n%s", r.Payload, stored)
	}
	// Upstream's unique key index still dedups.
	dup := packet.New("event", "cam01", "x", "", packet.MapOf("idempotency_key", "event:cam01:1"))
	dr, _ := RecordOf(dup, "")
	if res := mustEnqueue(t, q, dr)[0]; !res.Duplicate || res.Seq != 2 {
		t.Fatalf("dup of upstream key: %+v", res)
	}
	// New rows continue upstream's AUTOINCREMENT: 6 was used and acked,
	// and the ignored duplicate insert above consumed 7, as it does in
	// upstream's own SqliteQueue.
	if res := mustEnqueue(t, q, rec(1))[0]; res.Seq != 8 {
		t.Fatalf("new seq %d, want 8", res.Seq)
	}
}

// TestCompatMigratesEarlyUpstreamFile opens a file from upstream's early
// Phase 2 drafts (no idempotency_key column), as upstream migrates it.
func TestCompatMigratesEarlyUpstreamFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "old.sqlite3")
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`CREATE TABLE packets (seq INTEGER PRIMARY KEY AUTOINCREMENT, enqueued_at TEXT NOT NULL, packet_id TEXT NOT NULL, ts TEXT NOT NULL, kind TEXT NOT NULL, source_id TEXT NOT NULL, payload_json TEXT NOT NULL, meta_json TEXT NOT NULL)`,
		`INSERT INTO packets (enqueued_at, packet_id, ts, kind, source_id, payload_json, meta_json) VALUES ('t', 'pid-1', 'ts', 'k', 's', '{}', '{}')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	q, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ms := mustLease(t, q, 10, time.Minute)
	if len(ms) != 1 || ms[0].Key != "pid-1" {
		t.Fatalf("migrated rows %+v", ms)
	}
}

// upstreamPython returns the PYTHONPATH holding the Python project's
// source, or skips when python3 cannot import its queue module.
func upstreamPython(t *testing.T) string {
	t.Helper()
	src := os.Getenv("SCHNITZEL_UPSTREAM_SRC") // e.g. <python checkout>/src
	if src == "" {
		t.Skip("set SCHNITZEL_UPSTREAM_SRC to the Python project's src/ to cross-check with upstream")
	}
	cmd := exec.Command("python3", "-c", "import schnitzel_stream.state.sqlite_queue")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("python3 cannot import the upstream queue (set SCHNITZEL_UPSTREAM_SRC): %v %s", err, out)
	}
	return src
}

// pyRead runs upstream's SqliteQueue.read on path and returns the rows as
// [seq, packet_id, ts, kind, source_id, payload, meta] (NaN as a string).
const pyRead = `
import json, math, sys
from schnitzel_stream.state.sqlite_queue import SqliteQueue
from schnitzel_stream.packet import StreamPacket
q = SqliteQueue(sys.argv[1])
def clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return repr(v)
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v
rows = [[r.seq, r.packet.packet_id, r.packet.ts, r.packet.kind, r.packet.source_id, clean(r.packet.payload), clean(r.packet.meta)] for r in q.read(limit=100)]
if sys.argv[2] == "ack-first":
    assert q.ack(seq=rows[0][0])
    # upstream enqueue into our file
    q.enqueue(StreamPacket(packet_id="py-1", ts="2026-01-01T00:00:00+00:00", kind="py", source_id="py", payload={"from": "python"}, meta={}))
print(json.dumps({"count": q.count(), "rows": rows}))
q.close()
`

// TestCompatUpstreamReadsOurFile has the Python project's own SqliteQueue
// read and ack a file schnitzel wrote (with leases, dead letters and dedup
// state in it), then drains what Python added.
func TestCompatUpstreamReadsOurFile(t *testing.T) {
	src := upstreamPython(t)
	p := filepath.Join(t.TempDir(), "ours.sqlite3")
	q, err := Open(p, Options{Private: true, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	payload := packet.MapOf("text", "café ☃ 😀", "n", int64(-3), "f", 2.5, "nan", math.NaN(), "l", []any{nil, true, "x"})
	p1 := &packet.Packet{ID: "go-1", TS: "2026-03-03T01:02:03.000004+00:00", Kind: "event", SourceID: "cam", Payload: payload,
		Meta: packet.MapOf("idempotency_key", "k1", "b", int64(1), "a", int64(2))}
	p2 := &packet.Packet{ID: "go-2", TS: "2026-03-03T01:02:04+00:00", Kind: "raw", SourceID: "s", Payload: "plain"}
	p3 := &packet.Packet{ID: "go-3", TS: "2026-03-03T01:02:05+00:00", Kind: "raw", SourceID: "s", Payload: int64(3)}
	var rs []Record
	for _, pk := range []*packet.Packet{p1, p2, p3} {
		r, err := RecordOf(pk, "")
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	mustEnqueue(t, q, rs...)
	// Leave our extra state behind: a lease on go-1, go-2 dead-lettered,
	// go-3 acked (its key in the dedup table).
	ms := mustLease(t, q, 3, time.Hour)
	q.Ack(ctx, Ref{Seq: ms[2].Seq})
	if st, err := q.Nack(ctx, Ref{Seq: ms[1].Seq}, nil); st != Dead || err != nil {
		t.Fatalf("nack: %v %v", st, err)
	}
	crash(t, q) // keep the lease in the file, as a killed process would

	cmd := exec.Command("python3", "-c", pyRead, p, "ack-first")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+src)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got struct {
		Count int
		Rows  [][]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %s: %v", out, err)
	}
	// Python sees go-1 only (it ignores leases), acks it, adds py-1.
	if len(got.Rows) != 1 || got.Count != 1 {
		t.Fatalf("python read %s", out)
	}
	want := `[1,"go-1","2026-03-03T01:02:03.000004+00:00","event","cam",{"f":2.5,"l":[null,true,"x"],"n":-3,"nan":"nan","text":"café ☃ 😀"},{"a":2,"b":1,"idempotency_key":"k1"}]`
	if b, _ := json.Marshal(got.Rows[0]); string(b) != want {
		t.Fatalf("python saw\n%s\nwant\n%s", b, want)
	}

	// Back in Go: Python acked go-1 (our state row for it is now an
	// orphan) and enqueued py-1.
	q, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ms = mustLease(t, q, 10, time.Minute)
	if len(ms) != 1 || ms[0].Packet.ID != "py-1" {
		t.Fatalf("after python: %+v", ms)
	}
	if v, _ := ms[0].Packet.Payload.(*packet.Map).GetString("from"); v != "python" {
		t.Fatalf("python payload %v", ms[0].Packet.Payload)
	}
	if res, _ := q.Check(ctx); len(res) != 1 || res[0] != "ok" {
		t.Fatalf("integrity %v", res)
	}
	if d, _ := q.Dead(ctx, 0, 10); len(d) != 1 || d[0].PacketID != "go-2" {
		t.Fatalf("dead letters %+v", d)
	}
}
