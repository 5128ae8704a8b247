import { useEffect, useState } from 'react';
import { enc, errorText, get, post } from '../api';
import { Confirm, type ConfirmRequest, Modal } from '../components/Dialog';
import { age, count, ErrorNote } from '../components/bits';
import { usePoll } from '../hooks';
import type { QueueInfo, QueueRow } from '../types';

export function QueuesPage() {
  const poll = usePoll((s) => get<{ queues: QueueInfo[] | null }>('/api/v1/queues', s), 5000, 'queues');
  const [peek, setPeek] = useState<{ path: string; dead: boolean } | null>(null);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const queues = poll.data?.queues ?? [];
  return (
    <section>
      <div className="page-head">
        <h1>Queues</h1>
        <button type="button" onClick={poll.refresh}>
          Refresh
        </button>
      </div>
      <p className="muted">The durable SQLite queue files the graphs use.</p>
      {note && <p className="note" role="status">{note}</p>}
      <ErrorNote error={poll.error} />
      <div className="table-wrap">
        <table className="grid" data-testid="queues-table">
          <thead>
            <tr>
              <th scope="col">Path</th>
              <th scope="col">Graphs</th>
              <th scope="col" className="num">Rows</th>
              <th scope="col" className="num">Leased</th>
              <th scope="col" className="num">Retrying</th>
              <th scope="col" className="num">Dead</th>
              <th scope="col" className="num">Oldest row</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {queues.map((q) => (
              <tr key={q.path} data-testid="queue-row" data-path={q.path}>
                <td className="mono">{q.path}</td>
                <td>{(q.graphs ?? []).join(', ')}</td>
                <td className="num">{count(q.rows)}</td>
                <td className="num">{count(q.leased)}</td>
                <td className="num">{count(q.retrying)}</td>
                <td className={'num' + (q.dead > 0 ? ' err-text' : '')}>{count(q.dead)}</td>
                <td className="num">{age(q.oldest_age_sec)}</td>
                <td className="actions">
                  <button type="button" onClick={() => setPeek({ path: q.path, dead: false })} data-testid="queue-peek">
                    Peek
                  </button>
                  <button type="button" onClick={() => setPeek({ path: q.path, dead: true })} disabled={!q.dead}>
                    Dead letters
                  </button>
                  <button
                    type="button"
                    disabled={!q.dead}
                    data-testid="queue-requeue"
                    onClick={() => {
                      setNote(null);
                      setConfirm({
                        title: 'Requeue dead letters?',
                        message: (
                          <p>
                            Put the {count(q.dead)} dead letters of <code>{q.path}</code> back in the queue: they will be
                            delivered again.
                          </p>
                        ),
                        confirm: 'Requeue',
                        run: async () => {
                          const r = await post<{ requeued: number }>('/api/v1/queues/requeue', { path: q.path, all: true });
                          setNote(`${r.requeued} rows requeued.`);
                          poll.refresh();
                        },
                      });
                    }}
                  >
                    Requeue dead
                  </button>
                </td>
              </tr>
            ))}
            {poll.data && queues.length === 0 && (
              <tr>
                <td colSpan={8} className="muted">
                  No graph uses a durable queue.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Modal open={peek !== null} onClose={() => setPeek(null)} title={peek ? `${peek.dead ? 'Dead letters' : 'Rows'} of ${peek.path}` : ''} className="drawer" testid="queue-drawer">
        {peek && <Peek path={peek.path} dead={peek.dead} />}
      </Modal>
      <Confirm
        req={confirm}
        onDone={(err) => {
          setConfirm(null);
          if (err) setNote('Requeue failed: ' + errorText(err));
        }}
      />
    </section>
  );
}

function Peek({ path, dead }: { path: string; dead: boolean }) {
  const [rows, setRows] = useState<QueueRow[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    get<{ rows: QueueRow[] | null }>(`/api/v1/queues/peek?path=${enc(path)}&limit=50${dead ? '&dead=1' : ''}`, ctrl.signal)
      .then((r) => setRows(r.rows ?? []))
      .catch((err) => {
        if (!(err instanceof DOMException)) setError(err);
      });
    return () => ctrl.abort();
  }, [path, dead]);
  if (error) return <ErrorNote error={error} />;
  if (!rows) return <p className="muted">Loading…</p>;
  if (rows.length === 0) return <p className="muted">No rows.</p>;
  return (
    <div className="table-wrap">
      <table className="grid compact" data-testid="peek-table">
        <thead>
          <tr>
            <th scope="col">seq</th>
            <th scope="col">ts</th>
            <th scope="col">kind</th>
            <th scope="col">source</th>
            <th scope="col">attempts</th>
            <th scope="col">last error</th>
            <th scope="col">payload</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.seq} data-testid="peek-row">
              <td className="num">{r.seq}</td>
              <td className="nowrap">{r.ts ?? ''}</td>
              <td>{r.kind ?? ''}</td>
              <td>{r.source_id ?? ''}</td>
              <td className="num">{r.attempts ?? 0}</td>
              <td>{r.last_error ?? ''}</td>
              <td className="payload">
                <code>{JSON.stringify(r.payload ?? null).slice(0, 300)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
