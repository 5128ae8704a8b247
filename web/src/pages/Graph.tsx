import { useEffect, useState } from 'react';
import { enc, errorText, get, post } from '../api';
import { Confirm, type ConfirmRequest } from '../components/Dialog';
import { count, ErrorNote, rate, StateBadge, time } from '../components/bits';
import { TapPanel } from '../components/Tap';
import { health, Topology } from '../components/Topology';
import { nodeConfigYAML } from '../graphmodel';
import { usePoll } from '../hooks';
import { Link, navigate } from '../router';
import type { GraphDetail } from '../types';

export default function GraphPage({ name }: { name: string }) {
  const poll = usePoll((s) => get<GraphDetail>(`/api/v1/graphs/${enc(name)}`, s), 1500, 'graph:' + name);
  const [selected, setSelected] = useState<string | null>(null);
  const [tap, setTap] = useState<{ node: string; port?: string } | null>(null);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const g = poll.data;

  if (!g) {
    return (
      <section>
        <h1>{name}</h1>
        {poll.error ? <ErrorNote error={poll.error} /> : <p className="muted">Loading…</p>}
        <p>
          <Link to="/">Back to the graphs</Link>
        </p>
      </section>
    );
  }
  const nodes = g.nodes ?? [];
  const edges = g.edges ?? [];
  const sel = nodes.find((n) => n.id === selected) ?? null;
  const running = g.state === 'running' || g.state === 'starting' || g.state === 'backoff';

  const act = (action: 'start' | 'stop' | 'restart') => {
    setActionError(null);
    const verb = action[0].toUpperCase() + action.slice(1);
    setConfirm({
      title: `${verb} ${g.name}?`,
      message: <p>{verb} the graph <strong>{g.name}</strong> (now {g.state}).</p>,
      confirm: verb,
      danger: action === 'stop',
      run: async () => {
        await post(`/api/v1/graphs/${enc(g.name)}/${action}`);
        poll.refresh();
      },
    });
  };

  return (
    <section className="graph-page">
      <div className="page-head">
        <h1>
          <Link to="/">Graphs</Link> / {g.name}
        </h1>
        <StateBadge state={g.state} testid="graph-state" />
        <span className="muted">
          {g.status ? `status ${g.status} · ` : ''}since {time(g.since)} · generation {g.generation}
        </span>
        <span className="spacer" />
        {running ? (
          <button type="button" onClick={() => act('stop')} data-testid="graph-stop">
            Stop
          </button>
        ) : (
          <button type="button" onClick={() => act('start')} data-testid="graph-start">
            Start
          </button>
        )}
        <button type="button" onClick={() => act('restart')} data-testid="graph-restart">
          Restart
        </button>
        <button type="button" className="primary" onClick={() => navigate(`/graphs/${enc(g.name)}/edit`)} data-testid="graph-edit">
          Edit
        </button>
      </div>
      <div className="stats">
        <span>
          in <strong data-testid="graph-in">{rate(g.in_per_sec)}</strong>/s
        </span>
        <span>
          out <strong data-testid="graph-out">{rate(g.out_per_sec)}</strong>/s
        </span>
        <span className={g.dropped > 0 ? 'warn-text' : ''}>drops {count(g.dropped)}</span>
        <span className={g.errors > 0 ? 'err-text' : ''}>errors {count(g.errors)}</span>
        <span>restarts {count(g.restarts)}</span>
      </div>
      {(g.last_error || g.reload_error) && (
        <p className="error-note" role="alert" data-testid="graph-last-error">
          {g.last_error || 'reload refused (the previous version keeps running): ' + g.reload_error}
        </p>
      )}
      {actionError && <p className="error-note" role="alert">{actionError}</p>}
      {poll.error !== null && <ErrorNote error={poll.error} />}
      <div className={'graph-layout' + (sel ? ' with-side' : '')}>
        <div className="canvas" data-testid="topology">
          {nodes.length === 0 ? (
            <p className="muted pad">No topology: the graph has not been built (see its state and last error).</p>
          ) : (
            <Topology
              nodes={nodes}
              edges={edges}
              selected={selected}
              onNode={(id) => setSelected(id)}
              onEdge={(e) => setTap({ node: e.from, port: e.from_port })}
              fitKey={sel ? 'side' : 'full'}
            />
          )}
        </div>
        {sel && (
          <aside className="side card" aria-label={`Node ${sel.id}`} data-testid="node-panel">
            <header className="side-head">
              <h2>{sel.id}</h2>
              <button type="button" className="icon" aria-label="Close the node panel" onClick={() => setSelected(null)}>
                ×
              </button>
            </header>
            <p className="mono small-text">{sel.plugin}</p>
            <dl className="kv">
              <dt>kind</dt>
              <dd>{sel.kind}</dd>
              <dt>health</dt>
              <dd>{health(sel)}</dd>
              <dt>consumed</dt>
              <dd>
                {count(sel.consumed)} ({rate(sel.consumed_per_sec)}/s)
              </dd>
              <dt>produced</dt>
              <dd>
                {count(sel.produced)} ({rate(sel.produced_per_sec)}/s)
              </dd>
              <dt>inbox</dt>
              <dd>
                {sel.inbox_depth} of {sel.inbox_max}
              </dd>
              <dt>drops</dt>
              <dd>{count(sel.dropped)}</dd>
              <dt>errors</dt>
              <dd>{count(sel.errors)}</dd>
            </dl>
            {sel.last_error && (
              <p className="error-note" data-testid="node-last-error">
                {sel.last_error}
              </p>
            )}
            <button type="button" className="primary" onClick={() => setTap({ node: sel.id })} data-testid="tap-button">
              Tap
            </button>
            <h3>Config</h3>
            <pre className="code" data-testid="node-config">
              {nodeConfigYAML(g.yaml, sel.id) || '(none)'}
            </pre>
          </aside>
        )}
      </div>
      {tap && <TapPanel graph={g.name} node={tap.node} port={tap.port} onClose={() => setTap(null)} />}
      <details className="card">
        <summary>YAML</summary>
        <pre className="code" data-testid="graph-yaml">
          {g.yaml}
        </pre>
      </details>
      <Report name={g.name} />
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

function Report({ name }: { name: string }) {
  const [open, setOpen] = useState(false);
  const [text, setText] = useState<string>('');
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!open) return;
    const ctrl = new AbortController();
    get<unknown>(`/api/v1/graphs/${enc(name)}/report`, ctrl.signal)
      .then((r) => setText(JSON.stringify(r, null, 2)))
      .catch((err) => {
        if (!(err instanceof DOMException)) setText(errorText(err));
      });
    return () => ctrl.abort();
  }, [open, name, tick]);
  return (
    <details className="card" onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>Report</summary>
      <button type="button" className="small" onClick={() => setTick((t) => t + 1)}>
        Refresh
      </button>
      <pre className="code" data-testid="graph-report">
        {text || 'Loading…'}
      </pre>
    </details>
  );
}
