// A live tap: an EventSource on /api/v1/graphs/NAME/tap (the cookie
// authenticates it: same origin). Rows are kept newest first and bounded;
// the stream is closed when the panel closes or its target changes.
import { useEffect, useMemo, useRef, useState } from 'react';
import { enc } from '../api';
import { copyText } from './bits';

const MAX_ROWS = 500;

interface Row {
  n: number;
  line: string;
  pkt: Record<string, unknown> | null;
}

type Status = 'connecting' | 'open' | 'reconnecting' | 'ended' | 'failed';

export function TapPanel({ graph, node, port, onClose }: { graph: string; node: string; port?: string; onClose: () => void }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [status, setStatus] = useState<Status>('connecting');
  const [endReason, setEndReason] = useState('');
  const [dropped, setDropped] = useState(0);
  const [paused, setPaused] = useState(false);
  const [skipped, setSkipped] = useState(0);
  const [filter, setFilter] = useState('');
  const [copied, setCopied] = useState<number | null>(null);
  const [received, setReceived] = useState(0);
  const [attempt, setAttempt] = useState(0);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    setRows([]);
    setStatus('connecting');
    setEndReason('');
    setDropped(0);
    setSkipped(0);
    setReceived(0);
    let n = 0;
    let pending: Row[] = [];
    let pendingSkipped = 0;
    let total = 0;
    const url = `/api/v1/graphs/${enc(graph)}/tap?node=${enc(node)}` + (port ? `&port=${enc(port)}` : '');
    const es = new EventSource(url, { withCredentials: true });
    es.onopen = () => setStatus('open');
    es.addEventListener('packet', (ev) => {
      const line = (ev as MessageEvent<string>).data;
      total++;
      if (pausedRef.current) {
        pendingSkipped++;
        return;
      }
      let pkt: Record<string, unknown> | null = null;
      try {
        const v: unknown = JSON.parse(line);
        if (v && typeof v === 'object' && !Array.isArray(v)) pkt = v as Record<string, unknown>;
      } catch {
        /* shown as text */
      }
      pending.push({ n: ++n, line, pkt });
      if (pending.length > MAX_ROWS) pending = pending.slice(-MAX_ROWS);
    });
    es.addEventListener('dropped', (ev) => {
      try {
        const d = JSON.parse((ev as MessageEvent<string>).data) as { dropped?: number };
        if (typeof d.dropped === 'number') setDropped(d.dropped);
      } catch {
        /* ignore */
      }
    });
    es.addEventListener('end', (ev) => {
      let reason = '';
      try {
        reason = (JSON.parse((ev as MessageEvent<string>).data) as { reason?: string }).reason ?? '';
      } catch {
        /* ignore */
      }
      es.close(); // no automatic reconnect after a clean end
      setEndReason(reason);
      setStatus('ended');
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) setStatus((s) => (s === 'ended' ? s : 'failed'));
      else setStatus((s) => (s === 'ended' ? s : 'reconnecting'));
    };
    // Rendering once per packet would be a re-render per packet: batch.
    const flush = window.setInterval(() => {
      if (pending.length > 0) {
        const add = pending.reverse();
        pending = [];
        setRows((old) => {
          const next = add.concat(old);
          return next.length > MAX_ROWS ? next.slice(0, MAX_ROWS) : next;
        });
      }
      if (pendingSkipped > 0) {
        const s = pendingSkipped;
        pendingSkipped = 0;
        setSkipped((old) => old + s);
      }
      setReceived(total);
    }, 250);
    return () => {
      es.close();
      window.clearInterval(flush);
    };
  }, [graph, node, port, attempt]);

  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return f === '' ? rows : rows.filter((r) => r.line.toLowerCase().includes(f));
  }, [rows, filter]);

  const statusText: Record<Status, string> = {
    connecting: 'connecting…',
    open: 'live',
    reconnecting: 'reconnecting…',
    ended: 'ended' + (endReason ? `: ${endReason}` : ''),
    failed: 'failed: the node is not running, or too many taps are open',
  };

  return (
    <section
      className="tap card"
      aria-label={`Tap of ${node}${port ? ' port ' + port : ''}`}
      data-testid="tap-panel"
      onKeyDown={(e) => {
        if (e.key === 'Escape') onClose();
      }}
    >
      <header className="tap-head">
        <h2>
          Tap <code>{node}</code>
          {port && (
            <>
              {' '}
              port <code>{port}</code>
            </>
          )}
        </h2>
        <span className={'tap-status tap-' + status} data-testid="tap-status">
          {statusText[status]}
        </span>
        <span className="muted" data-testid="tap-received">
          {received} received
        </span>
        <span className={dropped > 0 ? 'warn-text' : 'muted'} data-testid="tap-dropped">
          {dropped} dropped
        </span>
        {skipped > 0 && <span className="muted">{skipped} skipped while paused</span>}
        <label className="inline">
          Filter
          <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} data-testid="tap-filter" />
        </label>
        <button type="button" onClick={() => setPaused((p) => !p)} aria-pressed={paused} data-testid="tap-pause">
          {paused ? 'Resume' : 'Pause'}
        </button>
        {(status === 'ended' || status === 'failed') && (
          <button type="button" onClick={() => setAttempt((a) => a + 1)} data-testid="tap-reconnect">
            Reconnect
          </button>
        )}
        <button type="button" onClick={() => setRows([])}>
          Clear
        </button>
        <button type="button" onClick={onClose} data-testid="tap-close">
          Close
        </button>
      </header>
      <div className="table-wrap tap-table">
        <table className="grid compact">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">ts</th>
              <th scope="col">kind</th>
              <th scope="col">source_id</th>
              <th scope="col">payload</th>
              <th scope="col">
                <span className="offscreen">Copy</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={r.n} data-testid="tap-row">
                <td className="num">{r.n}</td>
                <td className="nowrap">{r.pkt ? String(r.pkt.ts ?? '') : ''}</td>
                <td>{r.pkt ? String(r.pkt.kind ?? '') : ''}</td>
                <td>{r.pkt ? String(r.pkt.source_id ?? '') : ''}</td>
                <td className="payload">
                  <code>{r.pkt ? JSON.stringify(r.pkt.payload ?? null).slice(0, 300) : r.line.slice(0, 300)}</code>
                </td>
                <td>
                  <button
                    type="button"
                    className="small"
                    onClick={() => {
                      const text = r.pkt ? JSON.stringify(r.pkt, null, 2) : r.line;
                      void copyText(text).then(() => setCopied(r.n));
                    }}
                  >
                    {copied === r.n ? 'Copied' : 'Copy JSON'}
                  </button>
                </td>
              </tr>
            ))}
            {shown.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  {rows.length === 0 ? 'Waiting for packets…' : 'No packet matches the filter.'}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
