// YAML <-> blocks: the editor's one model of a v2 graph. The YAML text is
// the source of truth; the blocks view reads it with parseGraph and changes
// it with the edit functions below, which go through the `yaml` Document
// API so that comments, key order, quoting and blank lines of everything
// not touched survive (upstream's editor regenerated the text from scratch
// and lost them). Pure functions: text in, text out; no React, no DOM.
import { Document, isCollection, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, YAMLMap, YAMLSeq } from 'yaml';

export type Kind = 'source' | 'node' | 'sink';

export interface ModelNode {
  id: string;
  kind: string; // as written; defaults to "node"
  plugin: string;
  config: Record<string, unknown>;
  index: number; // position in nodes:
  line: number; // 1-based line of the node's entry (0: unknown)
}

export interface ModelEdge {
  from: string;
  to: string;
  fromPort?: string;
  toPort?: string;
  index: number; // position in edges:
}

export interface GraphModel {
  version: unknown;
  nodes: ModelNode[];
  edges: ModelEdge[];
  config: Record<string, unknown>;
}

export interface ParseResult {
  model: GraphModel | null;
  error: string | null;
  errorLine: number; // 1-based, 0 when unknown
}

export class EditError extends Error {}

const parseOpts = { keepSourceTokens: false, uniqueKeys: false } as const;
// lineWidth 0: never fold long strings (a fold would change every line of a
// long plugin list the user did not touch).
const stringifyOpts = { lineWidth: 0, minContentWidth: 0 } as const;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string') {
    const s = v.trim();
    return s === '' ? undefined : s;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function first(m: Record<string, unknown>, ...keys: string[]): string | undefined {
  for (const k of keys) {
    const s = str(m[k]);
    if (s !== undefined) return s;
  }
  return undefined;
}

/** parseGraph reads a v2 graph (aliases: node_id, src/dst, src_port/dst_port). */
export function parseGraph(text: string): ParseResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { ...parseOpts, lineCounter: lc });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line ?? 0;
    return { model: null, error: e.message.split('\n')[0], errorLine: line };
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { model: null, error: String(err instanceof Error ? err.message : err), errorLine: 0 };
  }
  if (root === null || root === undefined) root = {};
  if (!isRecord(root)) return { model: null, error: 'the graph must be a YAML mapping', errorLine: 1 };
  const model: GraphModel = { version: root.version, nodes: [], edges: [], config: isRecord(root.config) ? root.config : {} };
  const nodesSeq = doc.get('nodes', true);
  const rawNodes = Array.isArray(root.nodes) ? root.nodes : [];
  rawNodes.forEach((raw, index) => {
    if (!isRecord(raw)) return;
    const id = first(raw, 'id', 'node_id');
    if (id === undefined) return;
    let line = 0;
    if (isSeq(nodesSeq)) {
      const item = nodesSeq.items[index] as { range?: [number, number, number] } | undefined;
      if (item?.range) line = lc.linePos(item.range[0]).line;
    }
    model.nodes.push({
      id,
      kind: first(raw, 'kind') ?? 'node',
      plugin: first(raw, 'plugin') ?? '',
      config: isRecord(raw.config) ? raw.config : {},
      index,
      line,
    });
  });
  const rawEdges = Array.isArray(root.edges) ? root.edges : [];
  rawEdges.forEach((raw, index) => {
    if (!isRecord(raw)) return;
    const from = first(raw, 'src', 'from');
    const to = first(raw, 'dst', 'to');
    if (from === undefined || to === undefined) return;
    const e: ModelEdge = { from, to, index };
    const fp = first(raw, 'src_port', 'from_port');
    const tp = first(raw, 'dst_port', 'to_port');
    if (fp !== undefined) e.fromPort = fp;
    if (tp !== undefined) e.toPort = tp;
    model.edges.push(e);
  });
  return { model, error: null, errorLine: 0 };
}

/** uniqueId: base, or base_2, base_3, ... whichever is free. */
export function uniqueId(model: GraphModel | null, base: string): string {
  const clean = base.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '') || 'node';
  const used = new Set((model?.nodes ?? []).map((n) => n.id));
  if (!used.has(clean)) return clean;
  for (let i = 2; ; i++) {
    const id = `${clean}_${i}`;
    if (!used.has(id)) return id;
  }
}

/** shortName: "pkg.mod:Name" -> "Name". */
export function shortName(plugin: string): string {
  const i = plugin.lastIndexOf(':');
  return i >= 0 ? plugin.slice(i + 1) : plugin;
}

// keepFlowPadding makes each flow collection keep its own padding when the
// document is written back: `{ a: 1 }` stays padded and `[0, 0]` stays
// tight (the yaml library has one option for the whole document).
function keepFlowPadding(doc: Document.Parsed, text: string): void {
  visit(doc, (_key, node) => {
    if (!isCollection(node) || !node.flow || !node.range || node.items.length === 0) return;
    const next = text.charAt(node.range[0] + 1);
    const pad = next === ' ' || next === '\t' ? ' ' : '';
    const coll = node as YAMLMap | YAMLSeq;
    const proto = Object.getPrototypeOf(coll) as { toString: (...a: unknown[]) => string };
    (coll as unknown as { toString: (...a: unknown[]) => string }).toString = (ctx?: unknown, ...rest: unknown[]) =>
      proto.toString.call(coll, ctx && typeof ctx === 'object' ? { ...ctx, flowCollectionPadding: pad } : ctx, ...rest);
  });
}

function load(text: string): Document.Parsed {
  const doc = parseDocument(text, parseOpts);
  if (doc.errors.length > 0) throw new EditError('the YAML does not parse: ' + doc.errors[0].message.split('\n')[0]);
  keepFlowPadding(doc, text);
  if (doc.contents === null || (isScalar(doc.contents) && (doc.contents.value === null || doc.contents.value === ''))) {
    doc.contents = doc.createNode({ version: 2 }) as never;
  }
  if (!isMap(doc.contents)) throw new EditError('the graph must be a YAML mapping');
  return doc;
}

// dump writes the document back; the trailing blank lines of the original
// (which the yaml library drops) are kept.
function dump(doc: Document.Parsed, original: string): string {
  const out = doc.toString(stringifyOpts).replace(/\n*$/, '');
  const tail = /\n*$/.exec(original)?.[0] ?? '';
  return out + (tail === '' ? '\n' : tail);
}

function seq(doc: Document.Parsed, key: string): YAMLSeq {
  let s = doc.get(key, true);
  if (!isSeq(s)) {
    s = new YAMLSeq();
    doc.set(key, s);
  }
  return s as YAMLSeq;
}

function scalarString(m: YAMLMap, key: string): string | undefined {
  return str(m.get(key));
}

function nodeId(m: YAMLMap): string | undefined {
  return scalarString(m, 'id') ?? scalarString(m, 'node_id');
}

function findNode(doc: Document.Parsed, id: string): YAMLMap {
  const nodes = doc.get('nodes', true);
  if (isSeq(nodes)) {
    for (const item of nodes.items) {
      if (isMap(item) && nodeId(item) === id) return item;
    }
  }
  throw new EditError(`no node "${id}"`);
}

function edgeEnd(m: YAMLMap, which: 'from' | 'to'): string | undefined {
  return which === 'from' ? (scalarString(m, 'src') ?? scalarString(m, 'from')) : (scalarString(m, 'dst') ?? scalarString(m, 'to'));
}

export interface NewNode {
  id: string;
  kind: string;
  plugin: string;
  config?: Record<string, unknown>;
}

const idRe = /^[A-Za-z0-9_.-]+$/;

/** addNode appends a node to nodes: (created when missing). */
export function addNode(text: string, n: NewNode): string {
  const doc = load(text);
  if (!idRe.test(n.id)) throw new EditError(`node id "${n.id}": use letters, digits, _ . -`);
  const nodes = seq(doc, 'nodes');
  for (const item of nodes.items) {
    if (isMap(item) && nodeId(item) === n.id) throw new EditError(`a node "${n.id}" exists already`);
  }
  const obj: Record<string, unknown> = { id: n.id, kind: n.kind, plugin: n.plugin };
  if (n.config && Object.keys(n.config).length > 0) obj.config = n.config;
  nodes.items.push(doc.createNode(obj));
  return dump(doc, text);
}

/** removeNode deletes a node and every edge to or from it. */
export function removeNode(text: string, id: string): string {
  const doc = load(text);
  const nodes = doc.get('nodes', true);
  if (isSeq(nodes)) nodes.items = nodes.items.filter((item) => !(isMap(item) && nodeId(item) === id));
  const edges = doc.get('edges', true);
  if (isSeq(edges)) {
    edges.items = edges.items.filter((item) => !(isMap(item) && (edgeEnd(item, 'from') === id || edgeEnd(item, 'to') === id)));
  }
  return dump(doc, text);
}

/** renameNode changes a node's id and every edge that names it. */
export function renameNode(text: string, oldId: string, newId: string): string {
  if (oldId === newId) return text;
  if (!idRe.test(newId)) throw new EditError(`node id "${newId}": use letters, digits, _ . -`);
  const doc = load(text);
  const node = findNode(doc, oldId);
  const nodes = doc.get('nodes', true) as YAMLSeq;
  for (const item of nodes.items) {
    if (isMap(item) && nodeId(item) === newId) throw new EditError(`a node "${newId}" exists already`);
  }
  node.set(node.has('id') || !node.has('node_id') ? 'id' : 'node_id', newId);
  const edges = doc.get('edges', true);
  if (isSeq(edges)) {
    for (const item of edges.items) {
      if (!isMap(item)) continue;
      for (const k of ['src', 'from', 'dst', 'to']) {
        if (scalarString(item, k) === oldId) item.set(k, newId);
      }
    }
  }
  return dump(doc, text);
}

/** setNodeField sets a node's kind or plugin. */
export function setNodeField(text: string, id: string, field: 'kind' | 'plugin', value: string): string {
  const doc = load(text);
  findNode(doc, id).set(field, value);
  return dump(doc, text);
}

/**
 * setConfig sets (value defined) or removes (undefined) one key of a node's
 * config. A node left with an empty config loses the config key.
 */
export function setConfig(text: string, id: string, key: string, value: unknown): string {
  const doc = load(text);
  const node = findNode(doc, id);
  let cfg: unknown = node.get('config', true);
  if (value === undefined) {
    if (isMap(cfg)) {
      cfg.delete(key);
      if (cfg.items.length === 0 && !cfg.commentBefore && !cfg.comment) node.delete('config');
    }
    return dump(doc, text);
  }
  if (!isMap(cfg)) {
    cfg = new YAMLMap();
    node.set('config', cfg);
  }
  const m = cfg as YAMLMap;
  const old = m.get(key, true);
  if (isScalar(old) && (value === null || typeof value !== 'object')) {
    // Keep the scalar node (its comment and quoting style) and change its value.
    old.value = value;
  } else {
    m.set(key, doc.createNode(value));
  }
  return dump(doc, text);
}

export interface NewEdge {
  from: string;
  to: string;
  fromPort?: string;
  toPort?: string;
}

/** addEdge appends an edge, in the key style the file already uses. */
export function addEdge(text: string, e: NewEdge): string {
  if (e.from === e.to) throw new EditError('an edge cannot connect a node to itself');
  const doc = load(text);
  findNode(doc, e.from);
  findNode(doc, e.to);
  const edges = seq(doc, 'edges');
  let upstreamKeys = false; // src/dst rather than from/to
  for (const item of edges.items) {
    if (!isMap(item)) continue;
    if (item.has('src') || item.has('dst')) upstreamKeys = true;
    const fp = scalarString(item, 'src_port') ?? scalarString(item, 'from_port');
    const tp = scalarString(item, 'dst_port') ?? scalarString(item, 'to_port');
    if (edgeEnd(item, 'from') === e.from && edgeEnd(item, 'to') === e.to && fp === e.fromPort && tp === e.toPort) {
      throw new EditError(`the edge ${e.from} -> ${e.to} exists already`);
    }
  }
  const obj: Record<string, string> = {};
  obj[upstreamKeys ? 'src' : 'from'] = e.from;
  if (e.fromPort) obj[upstreamKeys ? 'src_port' : 'from_port'] = e.fromPort;
  obj[upstreamKeys ? 'dst' : 'to'] = e.to;
  if (e.toPort) obj[upstreamKeys ? 'dst_port' : 'to_port'] = e.toPort;
  edges.items.push(doc.createNode(obj));
  return dump(doc, text);
}

/** removeEdge deletes the edge at index (ModelEdge.index). */
export function removeEdge(text: string, index: number): string {
  const doc = load(text);
  const edges = doc.get('edges', true);
  if (!isSeq(edges) || index < 0 || index >= edges.items.length) throw new EditError(`no edge #${index}`);
  edges.items.splice(index, 1);
  return dump(doc, text);
}

/** nodeConfigYAML is one node's config as YAML text (the graph page's side panel). */
export function nodeConfigYAML(text: string, id: string): string | null {
  try {
    const doc = load(text);
    const cfg = findNode(doc, id).get('config', true);
    if (cfg === undefined || cfg === null) return '';
    const d = new Document();
    d.contents = cfg as never;
    return d.toString(stringifyOpts);
  } catch {
    return null;
  }
}

/** toYAML renders one value as a YAML fragment (the form's fallback fields). */
export function toYAML(value: unknown): string {
  if (value === undefined) return '';
  const d = new Document(value);
  return d.toString(stringifyOpts).replace(/\n$/, '');
}

/** fromYAML parses a fallback field; empty text is undefined (unset). */
export function fromYAML(text: string): { value: unknown; error: string | null } {
  if (text.trim() === '') return { value: undefined, error: null };
  const d = parseDocument(text, parseOpts);
  if (d.errors.length > 0) return { value: undefined, error: d.errors[0].message.split('\n')[0] };
  return { value: d.toJS(), error: null };
}

/** rewrite parses and writes the text back unchanged in content (tests: what an edit does to untouched parts). */
export function rewrite(text: string): string {
  return dump(load(text), text);
}
