import { useMemo, useRef, useState } from 'react';
import { enc, errorText, get, post, request } from '../api';
import { Confirm, type ConfirmRequest } from '../components/Dialog';
import { count, ErrorNote, rate, Sparkline, StateBadge } from '../components/bits';
import { usePoll } from '../hooks';
import { Link, navigate } from '../router';
import type { GraphStatus } from '../types';

const SAMPLES = 60;

interface History {
  in: number[];
  out: number[];
}

function push(a: number[], v: number) {
  a.push(v);
  if (a.length > SAMPLES) a.splice(0, a.length - SAMPLES);
}

export function GraphsPage() {
  const poll = usePoll((s) => get<{ graphs: GraphStatus[] }>('/api/v1/graphs', s), 2000, 'graphs');
  const history = useRef(new Map<string, History>());
  const lastData = useRef<unknown>(null);
  const [nameFilter, setNameFilter] = useState('');
  const [stateFilter, setStateFilter] = useState('');
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);

  const graphs = poll.data?.graphs ?? [];
  // One sample per answer (bounded per graph; graphs that went away are forgotten).
  if (poll.data && poll.data !== lastData.current) {
    lastData.current = poll.data;
    const seen = new Set<string>();
    for (const g of graphs) {
      seen.add(g.name);
      let h = history.current.get(g.name);
      if (!h) {
        h = { in: [], out: [] };
        history.current.set(g.name, h);
      }
      push(h.in, g.in_per_sec);
      push(h.out, g.out_per_sec);
    }
    for (const k of [...history.current.keys()]) if (!seen.has(k)) history.current.delete(k);
  }

  const states = useMemo(() => [...new Set(graphs.map((g) => g.state))].sort(), [graphs]);
  const shown = graphs.filter(
    (g) => g.name.toLowerCase().includes(nameFilter.toLowerCase()) && (stateFilter === '' || g.state === stateFilter),
  );

  const act = (g: GraphStatus, action: 'start' | 'stop' | 'restart' | 'delete') => {
    const verbs = { start: 'Start', stop: 'Stop', restart: 'Restart', delete: 'Delete' };
    setActionError(null);
    setConfirm({
      title: `${verbs[action]} ${g.name}?`,
      message:
        action === 'delete' ? (
          <p>
            This stops the graph and removes its file <code>{g.file}</code>. It cannot be undone.
          </p>
        ) : (
          <p>
            {verbs[action]} the graph <strong>{g.name}</strong> (now {g.state}).
          </p>
        ),
      confirm: verbs[action],
      danger: action === 'delete' || action === 'stop',
      run: async () => {
        if (action === 'delete') await request('DELETE', `/api/v1/graphs/${enc(g.name)}`);
        else await post(`/api/v1/graphs/${enc(g.name)}/${action}`);
        poll.refresh();
      },
    });
  };

  return (
    <section>
      <div className="page-head">
        <h1>Graphs</h1>
        <button type="button" className="primary" onClick={() => navigate('/new')} data-testid="new-graph">
          New graph
        </button>
      </div>
      <div className="filters" role="search">
        <label>
          Name
          <input type="search" value={nameFilter} onChange={(e) => setNameFilter(e.target.value)} data-testid="filter-name" />
        </label>
        <label>
          State
          <select value={stateFilter} onChange={(e) => setStateFilter(e.target.value)} data-testid="filter-state">
            <option value="">all</option>
            {states.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <span className="muted">
          {shown.length} of {graphs.length}
        </span>
      </div>
      {actionError && <p className="error-note" role="alert">{actionError}</p>}
      <ErrorNote error={poll.error} />
      <div className="table-wrap">
        <table className="grid" data-testid="graphs-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col">Status</th>
              <th scope="col" className="num">In/s</th>
              <th scope="col" className="num">Out/s</th>
              <th scope="col" className="num">Drops</th>
              <th scope="col" className="num">Errors</th>
              <th scope="col" className="num">Restarts</th>
              <th scope="col">Last error</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((g) => {
              const h = history.current.get(g.name);
              const running = g.state === 'running' || g.state === 'starting' || g.state === 'backoff';
              return (
                <tr key={g.name} data-testid="graph-row" data-name={g.name} data-state={g.state}>
                  <td>
                    <Link to={`/graphs/${enc(g.name)}`} data-testid="graph-link">
                      {g.name}
                    </Link>
                    {g.origin && g.origin !== 'file' && <span className="tag">{g.origin}</span>}
                  </td>
                  <td>
                    <StateBadge state={g.state} />
                  </td>
                  <td>{g.status ?? ''}</td>
                  <td className="num rate-cell">
                    <span data-testid="rate-in">{rate(g.in_per_sec)}</span>
                    <Sparkline values={h ? [...h.in] : []} label={`${g.name} packets in per second`} />
                  </td>
                  <td className="num rate-cell">
                    <span data-testid="rate-out">{rate(g.out_per_sec)}</span>
                    <Sparkline values={h ? [...h.out] : []} label={`${g.name} packets out per second`} />
                  </td>
                  <td className={'num' + (g.dropped > 0 ? ' warn-text' : '')}>{count(g.dropped)}</td>
                  <td className={'num' + (g.errors > 0 ? ' err-text' : '')}>{count(g.errors)}</td>
                  <td className="num">{count(g.restarts)}</td>
                  <td className="last-error" title={g.last_error || g.reload_error}>
                    {g.last_error || (g.reload_error ? 'reload refused: ' + g.reload_error : '')}
                  </td>
                  <td className="actions">
                    {running ? (
                      <button type="button" onClick={() => act(g, 'stop')} data-testid="action-stop">
                        Stop
                      </button>
                    ) : (
                      <button type="button" onClick={() => act(g, 'start')} data-testid="action-start">
                        Start
                      </button>
                    )}
                    <button type="button" onClick={() => act(g, 'restart')} data-testid="action-restart">
                      Restart
                    </button>
                    <button type="button" className="danger-text" onClick={() => act(g, 'delete')} data-testid="action-delete">
                      Delete
                    </button>
                  </td>
                </tr>
              );
            })}
            {poll.data && shown.length === 0 && (
              <tr>
                <td colSpan={10} className="muted">
                  {graphs.length === 0 ? 'No graphs yet: create one with “New graph”.' : 'No graph matches the filter.'}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Confirm
        req={confirm}
        onDone={(err) => {
          setConfirm(null);
          if (err) setActionError(errorText(err));
        }}
      />
    </section>
  );
}
