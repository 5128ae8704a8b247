import { useState } from 'react';
import { ApiError, errorText, get, post } from '../api';
import { Confirm, type ConfirmRequest } from '../components/Dialog';
import { ErrorNote, rate, StateBadge } from '../components/bits';
import { usePoll } from '../hooks';
import { Link } from '../router';
import type { FleetResult, StreamStatus } from '../types';

const exampleFleet = `streams:
  - id: cam01
    enabled: true
    input:
      type: rtsp
      url: "rtsp://127.0.0.1:8554/stream1"
`;

export function FleetPage() {
  const poll = usePoll((s) => get<{ streams: StreamStatus[] | null }>('/api/v1/fleet/status', s), 3000, 'fleet');
  const [fleetYAML, setFleetYAML] = useState('');
  const [templateYAML, setTemplateYAML] = useState('');
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [result, setResult] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const streams = poll.data?.streams ?? [];

  const describe = (rs: FleetResult[] | undefined) =>
    (rs ?? []).map((r) => `${r.id}: ${r.action}${r.state ? ' (' + r.state + ')' : ''}${r.error ? ' — ' + r.error : ''}`).join('\n');

  const start = async () => {
    setBusy(true);
    setResult(null);
    try {
      const r = await post<{ ok: boolean; streams: FleetResult[] }>('/api/v1/fleet/start', {
        fleet_yaml: fleetYAML,
        template_yaml: templateYAML,
      });
      setResult((r.ok ? 'Started.\n' : 'Some streams failed.\n') + describe(r.streams));
      poll.refresh();
    } catch (err) {
      let msg = errorText(err);
      if (err instanceof ApiError && err.details && typeof err.details === 'object') {
        const errs = (err.details as { errors?: { line?: number; message: string }[] }).errors ?? [];
        if (errs.length) msg += '\n' + errs.map((e) => (e.line ? `line ${e.line}: ` : '') + e.message).join('\n');
      }
      setResult(msg);
    } finally {
      setBusy(false);
    }
  };

  const stop = (ids: string[]) => {
    setConfirm({
      title: ids.length ? `Stop ${ids.length} stream${ids.length > 1 ? 's' : ''}?` : 'Stop every fleet stream?',
      message: <p>{ids.length ? ids.join(', ') : 'All graphs started from a fleet file'} will be stopped and removed.</p>,
      confirm: 'Stop',
      danger: true,
      run: async () => {
        const r = await post<{ ok: boolean; streams: FleetResult[] }>('/api/v1/fleet/stop', { streams: ids });
        setResult('Stopped.\n' + describe(r.streams));
        setPicked(new Set());
        poll.refresh();
      },
    });
  };

  return (
    <section>
      <div className="page-head">
        <h1>Fleet</h1>
        <button type="button" onClick={poll.refresh}>
          Refresh
        </button>
        <button type="button" onClick={() => stop([...picked])} disabled={picked.size === 0} data-testid="fleet-stop-selected">
          Stop selected
        </button>
        <button type="button" className="danger" onClick={() => stop([])} disabled={streams.length === 0} data-testid="fleet-stop-all">
          Stop all
        </button>
      </div>
      <ErrorNote error={poll.error} />
      <div className="table-wrap">
        <table className="grid" data-testid="fleet-table">
          <thead>
            <tr>
              <th scope="col">
                <span className="offscreen">Select</span>
              </th>
              <th scope="col">Stream</th>
              <th scope="col">Graph</th>
              <th scope="col">State</th>
              <th scope="col">Status</th>
              <th scope="col" className="num">In/s</th>
              <th scope="col" className="num">Restarts</th>
              <th scope="col">Last error</th>
            </tr>
          </thead>
          <tbody>
            {streams.map((s) => (
              <tr key={s.id} data-testid="fleet-row" data-id={s.id}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`select ${s.id}`}
                    checked={picked.has(s.id)}
                    onChange={(e) => {
                      const next = new Set(picked);
                      if (e.target.checked) next.add(s.id);
                      else next.delete(s.id);
                      setPicked(next);
                    }}
                  />
                </td>
                <td>{s.id}</td>
                <td>
                  <Link to={`/graphs/${encodeURIComponent(s.graph)}`}>{s.graph}</Link>
                </td>
                <td>
                  <StateBadge state={s.state} />
                </td>
                <td>{s.status}</td>
                <td className="num">{rate(s.in_per_sec)}</td>
                <td className="num">{s.restarts}</td>
                <td className="last-error">{s.last_error}</td>
              </tr>
            ))}
            {poll.data && streams.length === 0 && (
              <tr>
                <td colSpan={8} className="muted">
                  No fleet streams run.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <form
        className="card fleet-form"
        onSubmit={(e) => {
          e.preventDefault();
          void start();
        }}
      >
        <h2>Start streams</h2>
        <div className="two">
          <label>
            Fleet file (YAML)
            <textarea
              value={fleetYAML}
              onChange={(e) => setFleetYAML(e.target.value)}
              rows={12}
              spellCheck={false}
              placeholder={exampleFleet}
              data-testid="fleet-yaml"
              required
            />
          </label>
          <label>
            Graph template (YAML; empty: the built-in default template)
            <textarea
              value={templateYAML}
              onChange={(e) => setTemplateYAML(e.target.value)}
              rows={12}
              spellCheck={false}
              data-testid="fleet-template"
            />
          </label>
        </div>
        <button type="submit" className="primary" disabled={busy || fleetYAML.trim() === ''} data-testid="fleet-start">
          {busy ? 'Starting…' : 'Start'}
        </button>
        {result && (
          <pre className="code" role="status" data-testid="fleet-result">
            {result}
          </pre>
        )}
      </form>
      <Confirm
        req={confirm}
        onDone={(err) => {
          setConfirm(null);
          if (err) setResult('Stop failed: ' + errorText(err));
        }}
      />
    </section>
  );
}
