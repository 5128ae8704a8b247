import { useEffect, useMemo, useRef, useState } from 'react';
import { ApiError, enc, errorText, get, request } from '../api';
import { Blocks } from '../components/Blocks';
import { ErrorNote } from '../components/bits';
import { YamlEditor, type YamlEditorHandle } from '../components/YamlEditor';
import { parseGraph } from '../graphmodel';
import { useDebounced } from '../hooks';
import { Link, navigate } from '../router';
import type { Diag, GraphDetail, PluginSpec, ValidateResult } from '../types';

export const TEMPLATE = `version: 2
# A new graph: a ticker source, a pass-through node and a discarding sink.
# Add blocks from the catalogue in the Blocks view, or edit this text.
nodes:
  - id: ticks
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config:
      interval_sec: 1
  - id: pass
    kind: node
    plugin: schnitzel_stream.nodes.dev:Identity
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:Identity
edges:
  - from: ticks
    to: pass
  - from: pass
    to: out
`;

const nameRe = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

type Mode = 'yaml' | 'blocks' | 'split';

export default function EditorPage({ name }: { name: string | null }) {
  const [text, setText] = useState<string | null>(name === null ? TEMPLATE : null);
  const [saved, setSaved] = useState<string | null>(name === null ? TEMPLATE : null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [newName, setNewName] = useState('');
  const [plugins, setPlugins] = useState<PluginSpec[]>([]);
  const [diags, setDiags] = useState<Diag[]>([]);
  const [validity, setValidity] = useState<'unknown' | 'checking' | 'valid' | 'invalid' | 'error'>('unknown');
  const [validateError, setValidateError] = useState<string | null>(null);
  const [saveState, setSaveState] = useState<{ busy: boolean; error: string | null }>({ busy: false, error: null });
  const [mode, setMode] = useState<Mode>(() => (window.innerWidth >= 1500 ? 'split' : 'yaml'));
  const cm = useRef<YamlEditorHandle | null>(null);
  const graphName = name ?? newName.trim();

  useEffect(() => {
    const ctrl = new AbortController();
    get<PluginSpec[]>('/api/v1/plugins', ctrl.signal)
      .then((p) => setPlugins(Array.isArray(p) ? p : []))
      .catch(() => {
        /* the catalogue is optional: the YAML view works without it */
      });
    if (name !== null) {
      get<GraphDetail>(`/api/v1/graphs/${enc(name)}`, ctrl.signal)
        .then((g) => {
          setText(g.yaml);
          setSaved(g.yaml);
        })
        .catch((err) => {
          if (!(err instanceof DOMException)) setLoadError(err);
        });
    }
    return () => ctrl.abort();
  }, [name]);

  // Validate as the user types (debounced); a late answer for older text is dropped.
  const debounced = useDebounced(text, 400);
  const seq = useRef(0);
  useEffect(() => {
    if (debounced === null) return;
    const my = ++seq.current;
    setValidity('checking');
    const q = graphName && nameRe.test(graphName) ? `?name=${enc(graphName)}` : '';
    request<ValidateResult>('POST', '/api/v1/validate' + q, { body: debounced, contentType: 'application/yaml' })
      .then((r) => {
        if (my !== seq.current) return;
        setDiags([...(r.errors ?? []), ...(r.warnings ?? [])]);
        setValidity(r.valid ? 'valid' : 'invalid');
        setValidateError(null);
      })
      .catch((err) => {
        if (my !== seq.current) return;
        setValidity('error');
        setValidateError(errorText(err));
      });
  }, [debounced, graphName]); // eslint-disable-line react-hooks/exhaustive-deps

  const parsed = useMemo(() => (text === null ? null : parseGraph(text)), [text]);
  const dirty = text !== null && text !== saved;

  useEffect(() => {
    if (!dirty) return;
    const h = (e: BeforeUnloadEvent) => {
      e.preventDefault();
    };
    window.addEventListener('beforeunload', h);
    return () => window.removeEventListener('beforeunload', h);
  }, [dirty]);

  const save = async () => {
    if (text === null) return;
    if (!nameRe.test(graphName) || /\.(ya?ml)$/.test(graphName)) {
      setSaveState({ busy: false, error: 'Give the graph a name: letters, digits, _ . - (up to 64), not ending in .yaml.' });
      return;
    }
    setSaveState({ busy: true, error: null });
    if (name === null) {
      // A new graph must not replace one of the same name unnoticed.
      try {
        const list = await get<{ graphs: { name: string }[] | null }>('/api/v1/graphs');
        if ((list.graphs ?? []).some((g) => g.name === graphName)) {
          setSaveState({ busy: false, error: `A graph named “${graphName}” exists already: pick another name, or open it in the editor.` });
          return;
        }
      } catch (err) {
        setSaveState({ busy: false, error: errorText(err) });
        return;
      }
    }
    try {
      await request('PUT', `/api/v1/graphs/${enc(graphName)}`, { body: text, contentType: 'application/yaml' });
      setSaved(text);
      setSaveState({ busy: false, error: null });
      navigate(`/graphs/${enc(graphName)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && err.details && typeof err.details === 'object') {
        const d = err.details as { errors?: Diag[]; warnings?: Diag[] };
        setDiags([...(d.errors ?? []), ...(d.warnings ?? [])]);
        setValidity('invalid');
        setSaveState({ busy: false, error: 'The server refused the graph: fix the problems below and save again.' });
        if (mode === 'blocks') setMode('yaml');
      } else {
        setSaveState({ busy: false, error: errorText(err) });
      }
    }
  };

  if (loadError) {
    return (
      <section>
        <h1>Edit {name}</h1>
        <ErrorNote error={loadError} />
        <Link to="/">Back to the graphs</Link>
      </section>
    );
  }
  if (text === null) return <p className="muted">Loading…</p>;

  const errors = diags.filter((d) => d.severity === 'error');
  const warnings = diags.filter((d) => d.severity !== 'error');
  const sorted = [...errors, ...warnings];

  return (
    <section className="editor-page">
      <div className="page-head">
        <h1>
          {name === null ? (
            'New graph'
          ) : (
            <>
              Edit <Link to={`/graphs/${enc(name)}`}>{name}</Link>
            </>
          )}
        </h1>
        {name === null && (
          <label className="inline">
            Name
            <input
              value={newName}
              onChange={(e) => setNewName(e.target.value)}
              placeholder="my-graph"
              aria-invalid={newName !== '' && !nameRe.test(newName.trim())}
              data-testid="editor-name"
            />
          </label>
        )}
        <div className="seg" role="group" aria-label="View">
          {(['yaml', 'blocks', 'split'] as Mode[]).map((m) => (
            <button key={m} type="button" aria-pressed={mode === m} onClick={() => setMode(m)} data-testid={'view-' + m}>
              {m === 'yaml' ? 'YAML' : m === 'blocks' ? 'Blocks' : 'Both'}
            </button>
          ))}
        </div>
        <span className={'validity v-' + validity} data-testid="validity" role="status">
          {validity === 'checking'
            ? 'checking…'
            : validity === 'valid'
              ? warnings.length
                ? `valid, ${warnings.length} warning${warnings.length > 1 ? 's' : ''}`
                : 'valid'
              : validity === 'invalid'
                ? `${errors.length} error${errors.length === 1 ? '' : 's'}`
                : validity === 'error'
                  ? 'cannot validate'
                  : ''}
        </span>
        <span className="spacer" />
        {dirty && <span className="muted">unsaved changes</span>}
        <button type="button" className="primary" onClick={() => void save()} disabled={saveState.busy} data-testid="editor-save">
          {saveState.busy ? 'Saving…' : 'Save'}
        </button>
      </div>
      {saveState.error && (
        <p className="error-note" role="alert" data-testid="save-error">
          {saveState.error}
        </p>
      )}
      {validateError && <p className="error-note">Validation failed: {validateError}</p>}
      <div className={'editor-views mode-' + mode}>
        <div className="view-yaml" hidden={mode === 'blocks'}>
          <YamlEditor value={text} onChange={setText} diags={diags} handle={cm} label="Graph YAML" />
        </div>
        <div className="view-blocks" hidden={mode === 'yaml'}>
          <Blocks
            text={text}
            model={parsed?.model ?? null}
            parseError={parsed?.error ?? null}
            plugins={plugins}
            diags={diags}
            onText={setText}
            fitKey={mode === 'yaml' ? 'hidden' : mode}
          />
        </div>
      </div>
      <div className="problems card" data-testid="problems">
        <h2>
          Problems{' '}
          <span className="muted">
            ({plural(errors.length, 'error')}, {plural(warnings.length, 'warning')})
          </span>
        </h2>
        {sorted.length === 0 ? (
          <p className="muted">{validity === 'valid' ? 'None: the graph is valid.' : 'None so far.'}</p>
        ) : (
          <ul>
            {sorted.map((d, i) => (
              <li key={i} className={'diag diag-' + d.severity} data-testid="diag" data-line={d.line} data-severity={d.severity}>
                <button
                  type="button"
                  className="link"
                  onClick={() => {
                    if (mode === 'blocks') setMode('split');
                    window.setTimeout(() => cm.current?.goto(d.line || 1), 0);
                  }}
                >
                  line {d.line || '?'}
                  {d.column ? `:${d.column}` : ''}
                </button>{' '}
                <span className={d.severity === 'error' ? 'err-text' : 'warn-text'}>{d.severity}</span>{' '}
                {d.subject && <code>{d.subject}</code>} {d.message}
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
