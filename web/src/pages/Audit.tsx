import { useMemo, useState } from 'react';
import { get } from '../api';
import { ErrorNote, time } from '../components/bits';
import { usePoll } from '../hooks';
import type { AuditEvent } from '../types';

export function AuditPage() {
  const [auto, setAuto] = useState(true);
  const poll = usePoll((s) => get<{ events: AuditEvent[] | null }>('/api/v1/audit?limit=500', s), auto ? 5000 : 0, 'audit:' + auto);
  const [text, setText] = useState('');
  const [action, setAction] = useState('');
  const [status, setStatus] = useState('');
  const events = poll.data?.events ?? [];
  const actions = useMemo(() => [...new Set(events.map((e) => e.action))].sort(), [events]);
  const statuses = useMemo(() => [...new Set(events.map((e) => e.status))].sort(), [events]);
  const shown = useMemo(() => {
    const t = text.trim().toLowerCase();
    return events
      .filter((e) => (action === '' || e.action === action) && (status === '' || e.status === status))
      .filter((e) => t === '' || JSON.stringify(e).toLowerCase().includes(t))
      .slice()
      .reverse(); // newest first
  }, [events, text, action, status]);
  return (
    <section>
      <div className="page-head">
        <h1>Audit</h1>
        <button type="button" onClick={poll.refresh} data-testid="audit-refresh">
          Refresh
        </button>
        <label className="inline">
          <input type="checkbox" checked={auto} onChange={(e) => setAuto(e.target.checked)} /> Auto refresh
        </label>
      </div>
      <div className="filters" role="search">
        <label>
          Text
          <input type="search" value={text} onChange={(e) => setText(e.target.value)} data-testid="audit-filter" />
        </label>
        <label>
          Action
          <select value={action} onChange={(e) => setAction(e.target.value)} data-testid="audit-action">
            <option value="">all</option>
            {actions.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">all</option>
            {statuses.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <span className="muted">
          {shown.length} of {events.length}
        </span>
      </div>
      <ErrorNote error={poll.error} />
      <div className="table-wrap">
        <table className="grid compact" data-testid="audit-table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Status</th>
              <th scope="col">Reason</th>
              <th scope="col">Request</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e, i) => (
              <tr key={e.event_id ?? i} data-testid="audit-row" data-action={e.action} data-status={e.status}>
                <td className="nowrap">{time(e.ts)}</td>
                <td>{e.actor}</td>
                <td className="mono">{e.action}</td>
                <td className="mono">{e.target}</td>
                <td>
                  <span className={'pill pill-' + e.status}>{e.status}</span>
                </td>
                <td>{e.reason ?? ''}</td>
                <td className="mono small-text">{e.request_id ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
