// The blocks view: the YAML's graph as a canvas. Every edit goes through
// graphmodel (text in, text out), so the YAML view and this one never
// disagree; positions live here only (not in the file, as upstream).
import {
  applyNodeChanges,
  Background,
  type Connection,
  Controls,
  type Edge as FlowEdge,
  Handle,
  type Node as FlowNode,
  type NodeChange,
  type NodeProps,
  MarkerType,
  Position,
  ReactFlow,
  type ReactFlowInstance,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { memo, useEffect, useMemo, useRef, useState } from 'react';
import {
  addEdge,
  addNode,
  EditError,
  fromYAML,
  type GraphModel,
  type ModelNode,
  removeEdge,
  removeNode,
  renameNode,
  setConfig,
  setNodeField,
  shortName,
  toYAML,
  uniqueId,
} from '../graphmodel';
import { layout } from '../layout';
import type { ConfigField, Diag, PluginSpec } from '../types';

const DEFAULT_OUT = '@out';
const DEFAULT_IN = '@in';
const SIZE = { w: 190, h: 80 };

type BlockData = { node: ModelNode; spec?: PluginSpec; outs: string[]; ins: string[]; problems: number };
type BlockNode = FlowNode<BlockData, 'block'>;

const Block = memo(function Block({ data, selected }: NodeProps<BlockNode>) {
  const n = data.node;
  const outs = data.outs;
  const ins = data.ins;
  return (
    <div
      className={'block kind-' + n.kind + (selected ? ' selected' : '') + (data.problems ? ' has-problems' : '')}
      data-testid="block-node"
      data-node={n.id}
    >
      {n.kind !== 'source' &&
        ins.map((p, i) => (
          <Handle
            key={'i' + p}
            id={p}
            type="target"
            position={Position.Left}
            style={{ top: `${((i + 1) * 100) / (ins.length + 1)}%` }}
            title={p === DEFAULT_IN ? 'input' : 'input port ' + p}
          />
        ))}
      <div className="block-title">
        <strong>{n.id}</strong>
        <span className="node-kind">{n.kind}</span>
      </div>
      <div className="node-plugin" title={n.plugin}>
        {shortName(n.plugin) || '(no plugin)'}
      </div>
      {data.problems > 0 && <div className="err-text small-text">{data.problems} problem{data.problems > 1 ? 's' : ''}</div>}
      {outs.length > 1 && (
        <div className="ports small-text">
          {outs.filter((p) => p !== DEFAULT_OUT).join(' · ')}
        </div>
      )}
      {n.kind !== 'sink' &&
        outs.map((p, i) => (
          <Handle
            key={'o' + p}
            id={p}
            type="source"
            position={Position.Right}
            style={{ top: `${((i + 1) * 100) / (outs.length + 1)}%` }}
            title={p === DEFAULT_OUT ? 'output' : 'output port ' + p}
          />
        ))}
    </div>
  );
});

const nodeTypes = { block: Block };

function subjectNode(d: Diag): string | null {
  const m = /^node "([^"]+)"/.exec(d.subject ?? '');
  return m ? m[1] : null;
}

export function Blocks({
  text,
  model,
  parseError,
  plugins,
  diags,
  onText,
  fitKey,
}: {
  text: string;
  model: GraphModel | null;
  parseError: string | null;
  plugins: PluginSpec[];
  diags: Diag[];
  onText: (t: string) => void;
  fitKey: string; // the view was shown or resized: fit again
}) {
  const specs = useMemo(() => new Map(plugins.map((p) => [p.name, p])), [plugins]);
  const [rfNodes, setRfNodes] = useState<BlockNode[]>([]);
  const [selNode, setSelNode] = useState<string | null>(null);
  const [selEdge, setSelEdge] = useState<number | null>(null);
  const [editError, setEditError] = useState<string | null>(null);
  const rf = useRef<ReactFlowInstance<BlockNode, FlowEdge> | null>(null);
  const relayout = useRef(true);
  const selNodeRef = useRef(selNode);
  selNodeRef.current = selNode;

  const apply = (f: () => string) => {
    try {
      const next = f();
      setEditError(null);
      if (next !== text) onText(next);
      return true;
    } catch (err) {
      setEditError(err instanceof EditError || err instanceof Error ? err.message : String(err));
      return false;
    }
  };

  const problems = useMemo(() => {
    const m = new Map<string, number>();
    for (const d of diags) {
      const id = subjectNode(d);
      if (id && d.severity === 'error') m.set(id, (m.get(id) ?? 0) + 1);
    }
    return m;
  }, [diags]);

  // Nodes follow the model; a known node keeps its position and measurements.
  useEffect(() => {
    if (!model) return;
    setRfNodes((prev) => {
      const byId = new Map(prev.map((n) => [n.id, n]));
      const fresh = model.nodes.filter((n) => !byId.has(n.id));
      let pos: Map<string, { x: number; y: number }> | null = null;
      if (relayout.current || (prev.length === 0 && fresh.length > 0)) {
        pos = layout(model.nodes, model.edges, SIZE);
        relayout.current = false;
      } else if (fresh.length > 0) {
        // A node renamed in the YAML (one gone, one new) keeps its place;
        // other new nodes go to the right of what is there, stacked.
        const ids = new Set(model.nodes.map((n) => n.id));
        const gone = prev.filter((n) => !ids.has(n.id));
        const maxX = Math.max(0, ...prev.map((n) => n.position.x));
        const minY = Math.min(0, ...prev.map((n) => n.position.y));
        pos = new Map(
          fresh.map((n, i) => [n.id, i < gone.length ? gone[i].position : { x: maxX + SIZE.w + 60, y: minY + (i - gone.length) * (SIZE.h + 30) }]),
        );
      }
      return model.nodes.map((n) => {
        const outs = new Set<string>([DEFAULT_OUT]);
        specs.get(n.plugin)?.output_ports?.forEach((p) => outs.add(p));
        const ins = new Set<string>([DEFAULT_IN]);
        for (const e of model.edges) {
          if (e.from === n.id && e.fromPort) outs.add(e.fromPort);
          if (e.to === n.id && e.toPort) ins.add(e.toPort);
        }
        const data: BlockData = { node: n, spec: specs.get(n.plugin), outs: [...outs], ins: [...ins], problems: problems.get(n.id) ?? 0 };
        const old = byId.get(n.id);
        const p = pos?.get(n.id);
        const selected = n.id === selNodeRef.current;
        if (old) return { ...old, data, selected, position: p && pos && relayoutAll(pos, fresh) ? p : old.position };
        return { id: n.id, type: 'block', position: p ?? { x: 0, y: 0 }, data, selected, ariaLabel: `block ${n.id}` } as BlockNode;
      });
    });
  }, [model, specs, problems]);

  const edges: FlowEdge[] = useMemo(() => {
    if (!model) return [];
    const ids = new Set(model.nodes.map((n) => n.id));
    return model.edges
      .filter((e) => ids.has(e.from) && ids.has(e.to))
      .map((e) => ({
        id: 'e' + e.index,
        source: e.from,
        target: e.to,
        sourceHandle: e.fromPort ?? DEFAULT_OUT,
        targetHandle: e.toPort ?? DEFAULT_IN,
        label: e.fromPort || e.toPort ? `${e.fromPort ?? ''}${e.toPort ? ' → ' + e.toPort : ''}` : undefined,
        selected: selEdge === e.index,
        markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
        data: { index: e.index },
      }));
  }, [model, selEdge]);

  useEffect(() => {
    if (fitKey === 'hidden') return;
    const t = window.setTimeout(() => rf.current?.fitView({ padding: 0.2, maxZoom: 1.2 }), 120);
    return () => window.clearTimeout(t);
  }, [fitKey]);

  if (!model) {
    return (
      <div className="blocks blocks-error" data-testid="blocks">
        <p className="error-note">The YAML does not parse{parseError ? `: ${parseError}` : ''}. Fix it in the YAML view.</p>
      </div>
    );
  }

  const onNodesChange = (changes: NodeChange<BlockNode>[]) => {
    const kept = changes.filter((c) => c.type !== 'remove');
    for (const c of changes) {
      if (c.type === 'select') {
        if (c.selected) {
          setSelNode(c.id);
          setSelEdge(null);
        } else setSelNode((s) => (s === c.id ? null : s));
      }
    }
    if (kept.length) setRfNodes((ns) => applyNodeChanges(kept, ns));
  };

  const onConnect = (c: Connection) => {
    apply(() =>
      addEdge(text, {
        from: c.source,
        to: c.target,
        fromPort: c.sourceHandle && c.sourceHandle !== DEFAULT_OUT ? c.sourceHandle : undefined,
        toPort: c.targetHandle && c.targetHandle !== DEFAULT_IN ? c.targetHandle : undefined,
      }),
    );
  };

  const selected = model.nodes.find((n) => n.id === selNode) ?? null;
  const edge = selEdge !== null ? (model.edges.find((e) => e.index === selEdge) ?? null) : null;

  return (
    <div className="blocks" data-testid="blocks">
      <Palette
        plugins={plugins}
        onAdd={(p) => {
          const base = shortName(p.name).replace(/(Source|Sink|Node)$/, '').toLowerCase() || p.role;
          const id = uniqueId(model, base);
          const cfg: Record<string, unknown> = {};
          for (const f of p.config ?? []) if (f.required && f.default !== undefined && f.default !== null) cfg[f.key] = f.default;
          if (apply(() => addNode(text, { id, kind: p.role === 'source' || p.role === 'sink' ? p.role : 'node', plugin: p.name, config: cfg }))) {
            setSelNode(id);
            setSelEdge(null);
            window.setTimeout(() => rf.current?.fitView({ padding: 0.2, maxZoom: 1.2, duration: 200 }), 150);
          }
        }}
      />
      <div className="blocks-canvas">
        <div className="blocks-tools">
          <button
            type="button"
            className="small"
            onClick={() => {
              const pos = layout(model.nodes, model.edges, SIZE);
              setRfNodes((ns) => ns.map((n) => ({ ...n, position: pos.get(n.id) ?? n.position })));
              window.setTimeout(() => rf.current?.fitView({ padding: 0.2, maxZoom: 1.2 }), 30);
            }}
          >
            Auto layout
          </button>
          <button type="button" className="small" onClick={() => rf.current?.fitView({ padding: 0.2, maxZoom: 1.2 })}>
            Fit view
          </button>
          <span className="muted small-text">Drag from a right handle to a left handle to connect; Delete removes the selection.</span>
        </div>
        {editError && (
          <p className="error-note" role="alert" data-testid="blocks-error">
            {editError}
          </p>
        )}
        <div className="blocks-flow">
          <ReactFlow<BlockNode, FlowEdge>
            nodes={rfNodes}
            edges={edges}
            nodeTypes={nodeTypes}
            onInit={(inst) => {
              rf.current = inst;
              inst.fitView({ padding: 0.2, maxZoom: 1.2 });
            }}
            onNodesChange={onNodesChange}
            onConnect={onConnect}
            onEdgeClick={(_, e) => {
              setSelEdge((e.data as { index: number }).index);
              setSelNode(null);
            }}
            onPaneClick={() => {
              setSelEdge(null);
            }}
            onNodesDelete={(ns) => {
              let t = text;
              apply(() => {
                for (const n of ns) t = removeNode(t, n.id);
                return t;
              });
              setSelNode(null);
            }}
            onEdgesDelete={(es) => {
              let t = text;
              const idx = es.map((e) => (e.data as { index: number }).index).sort((a, b) => b - a);
              apply(() => {
                for (const i of idx) t = removeEdge(t, i);
                return t;
              });
              setSelEdge(null);
            }}
            deleteKeyCode={['Delete', 'Backspace']}
            minZoom={0.05}
            onlyRenderVisibleElements={model.nodes.length > 150}
            proOptions={{ hideAttribution: true }}
          >
            <Background gap={20} />
            <Controls showInteractive={false} />
          </ReactFlow>
        </div>
      </div>
      <aside className="blocks-side" aria-label="Properties">
        {selected ? (
          <NodeForm key={selected.id} node={selected} spec={specs.get(selected.plugin)} plugins={plugins} text={text} apply={apply} onRenamed={setSelNode} />
        ) : edge ? (
          <div data-testid="edge-form">
            <h3>Edge</h3>
            <p>
              <code>{edge.from}</code>
              {edge.fromPort && <> port <code>{edge.fromPort}</code></>} → <code>{edge.to}</code>
              {edge.toPort && <> port <code>{edge.toPort}</code></>}
            </p>
            <button
              type="button"
              className="danger"
              onClick={() => {
                if (apply(() => removeEdge(text, edge.index))) setSelEdge(null);
              }}
              data-testid="edge-delete"
            >
              Delete edge
            </button>
          </div>
        ) : (
          <p className="muted">Select a block to edit its config, or add one from the catalogue.</p>
        )}
      </aside>
    </div>
  );
}

function relayoutAll(pos: Map<string, { x: number; y: number }>, fresh: ModelNode[]): boolean {
  // A full layout covers every node; a placement only the fresh ones.
  return pos.size > fresh.length;
}

function Palette({ plugins, onAdd }: { plugins: PluginSpec[]; onAdd: (p: PluginSpec) => void }) {
  const [q, setQ] = useState('');
  const f = q.trim().toLowerCase();
  const shown = plugins.filter((p) => f === '' || p.name.toLowerCase().includes(f) || (p.summary ?? '').toLowerCase().includes(f));
  const roles = ['source', 'node', 'sink'];
  return (
    <aside className="palette" aria-label="Plugin catalogue" data-testid="palette">
      <h3>Add a block</h3>
      <input type="search" placeholder="Filter plugins" aria-label="Filter plugins" value={q} onChange={(e) => setQ(e.target.value)} />
      {roles.map((role) => {
        const list = shown.filter((p) => (roles.includes(p.role) ? p.role : 'node') === role);
        if (list.length === 0) return null;
        return (
          <div key={role}>
            <h4>{role}s</h4>
            <ul>
              {list.map((p) => (
                <li key={p.name}>
                  <button type="button" className="palette-item" title={p.summary ?? p.name} onClick={() => onAdd(p)} data-testid="palette-item" data-plugin={p.name}>
                    {shortName(p.name)}
                  </button>
                </li>
              ))}
            </ul>
          </div>
        );
      })}
    </aside>
  );
}

type Apply = (f: () => string) => boolean;

function NodeForm({
  node,
  spec,
  plugins,
  text,
  apply,
  onRenamed,
}: {
  node: ModelNode;
  spec?: PluginSpec;
  plugins: PluginSpec[];
  text: string;
  apply: Apply;
  onRenamed: (id: string) => void;
}) {
  const [id, setId] = useState(node.id);
  const [plugin, setPlugin] = useState(node.plugin);
  const [newKey, setNewKey] = useState('');
  useEffect(() => setPlugin(node.plugin), [node.plugin]);
  const fields = spec?.config ?? [];
  const known = new Set(fields.map((f) => f.key));
  const extra = Object.keys(node.config).filter((k) => !known.has(k));
  const commitId = () => {
    const v = id.trim();
    if (v === node.id || v === '') {
      setId(node.id);
      return;
    }
    if (apply(() => renameNode(text, node.id, v))) onRenamed(v);
  };
  return (
    <div className="node-form" data-testid="node-form">
      <h3>Block</h3>
      <label>
        id
        <input
          value={id}
          onChange={(e) => setId(e.target.value)}
          onBlur={commitId}
          onKeyDown={(e) => {
            if (e.key === 'Enter') commitId();
          }}
          data-testid="form-id"
        />
      </label>
      <label>
        kind
        <select value={node.kind} onChange={(e) => apply(() => setNodeField(text, node.id, 'kind', e.target.value))}>
          {['source', 'node', 'sink'].concat(['source', 'node', 'sink'].includes(node.kind) ? [] : [node.kind]).map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </label>
      <label>
        plugin
        <input
          list="plugin-names"
          value={plugin}
          onChange={(e) => setPlugin(e.target.value)}
          onBlur={() => plugin.trim() !== node.plugin && plugin.trim() !== '' && apply(() => setNodeField(text, node.id, 'plugin', plugin.trim()))}
        />
        <datalist id="plugin-names">
          {plugins.map((p) => (
            <option key={p.name} value={p.name} />
          ))}
        </datalist>
      </label>
      {spec?.summary && <p className="muted small-text">{spec.summary}</p>}
      {!spec && node.plugin && <p className="warn-text small-text">Not in the plugin catalogue: config keys are edited as YAML.</p>}
      <h4>config</h4>
      {fields.map((f) => (
        <Field key={f.key} field={f} value={node.config[f.key]} onSet={(v) => apply(() => setConfig(text, node.id, f.key, v))} />
      ))}
      {extra.map((k) => (
        <Field key={k} field={{ key: k, type: 'any' }} value={node.config[k]} onSet={(v) => apply(() => setConfig(text, node.id, k, v))} />
      ))}
      <div className="row">
        <input placeholder="new key" aria-label="New config key" value={newKey} onChange={(e) => setNewKey(e.target.value)} />
        <button
          type="button"
          className="small"
          disabled={!/^[A-Za-z0-9_.-]+$/.test(newKey) || newKey in node.config}
          onClick={() => {
            if (apply(() => setConfig(text, node.id, newKey, ''))) setNewKey('');
          }}
        >
          Add key
        </button>
      </div>
      <button
        type="button"
        className="danger"
        onClick={() => apply(() => removeNode(text, node.id))}
        data-testid="node-delete"
      >
        Delete block
      </button>
    </div>
  );
}

const scalarTypes = new Set(['string', 'int', 'float', 'seconds', 'bool']);

function widgetFor(f: ConfigField, value: unknown): 'enum' | 'bool' | 'number' | 'string' | 'yaml' {
  const fits = value === undefined || value === null || typeof value !== 'object';
  if (!fits) return 'yaml';
  if (f.enum && f.enum.length > 0) return 'enum';
  if (!scalarTypes.has(f.type)) return 'yaml';
  if (f.type === 'bool') return typeof value === 'string' ? 'string' : 'bool';
  if (f.type === 'string') return 'string';
  return 'number';
}

function Field({ field, value, onSet }: { field: ConfigField; value: unknown; onSet: (v: unknown) => void }) {
  const w = widgetFor(field, value);
  const ext = w === 'yaml' ? toYAML(value) : value === undefined || value === null ? '' : String(value);
  const [draft, setDraft] = useState(ext);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    setDraft(ext);
    setErr(null);
  }, [ext]);
  const id = 'cfg-' + field.key;
  const def = field.default !== undefined && field.default !== null ? `default ${JSON.stringify(field.default)}` : '';
  const hint = [
    field.type,
    field.required ? 'required' : '',
    def,
    field.secret ? 'secret' : '',
    field.advanced ? 'advanced' : '',
    field.deprecated ? `deprecated: ${field.deprecated}` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  const commit = (raw: string) => {
    if (raw === ext) return;
    if (w === 'yaml') {
      const r = fromYAML(raw);
      if (r.error) {
        setErr(r.error);
        return;
      }
      setErr(null);
      onSet(r.value);
      return;
    }
    if (raw.trim() === '') {
      onSet(undefined);
      return;
    }
    if (w === 'number') {
      const n = Number(raw.trim());
      onSet(Number.isFinite(n) && /^[-+]?[0-9.eE+-]+$/.test(raw.trim()) ? (field.type === 'int' ? Math.trunc(n) : n) : raw);
      return;
    }
    onSet(raw);
  };
  return (
    <div className="field" data-testid="config-field" data-key={field.key} data-widget={w}>
      <label htmlFor={id}>
        {field.key} <span className="muted small-text">{hint}</span>
      </label>
      {w === 'enum' ? (
        <select id={id} value={draft} onChange={(e) => commit(e.target.value)}>
          <option value="">(unset)</option>
          {(field.enum ?? []).map((o) => (
            <option key={String(o)} value={String(o)}>
              {String(o)}
            </option>
          ))}
        </select>
      ) : w === 'bool' ? (
        <select
          id={id}
          value={draft}
          onChange={(e) => {
            const v = e.target.value;
            onSet(v === '' ? undefined : v === 'true');
          }}
        >
          <option value="">(unset)</option>
          <option value="true">true</option>
          <option value="false">false</option>
        </select>
      ) : w === 'yaml' ? (
        <textarea
          id={id}
          className="mono"
          rows={Math.min(8, Math.max(2, draft.split('\n').length))}
          value={draft}
          spellCheck={false}
          onChange={(e) => setDraft(e.target.value)}
          onBlur={() => commit(draft)}
          aria-describedby={err ? id + '-err' : undefined}
        />
      ) : (
        <input
          id={id}
          type={field.secret ? 'password' : 'text'}
          autoComplete={field.secret ? 'off' : undefined}
          placeholder={field.examples?.[0]}
          inputMode={w === 'number' ? 'decimal' : undefined}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onBlur={() => commit(draft)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') commit(draft);
          }}
        />
      )}
      {err && (
        <span className="err-text small-text" id={id + '-err'}>
          {err}
        </span>
      )}
      {field.doc && <span className="muted small-text field-doc">{field.doc}</span>}
    </div>
  );
}
