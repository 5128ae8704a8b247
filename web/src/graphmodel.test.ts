/// <reference types="node" />
import { describe, expect, it } from 'vitest';
import {
  addEdge,
  addNode,
  EditError,
  fromYAML,
  nodeConfigYAML,
  parseGraph,
  removeEdge,
  removeNode,
  renameNode,
  rewrite,
  setConfig,
  setNodeField,
  shortName,
  toYAML,
  uniqueId,
} from './graphmodel';

// Upstream style: comments, blank lines between nodes, flow collections,
// ports on edges (from_port/to_port), a quoted string, ${oc.env} values.
const upstream = `# Store-and-forward with a router.
version: 2
nodes:
  - id: ticks # the heartbeat
    kind: source
    plugin: schnitzel_stream.nodes.dev:TickerSource
    config:
      interval_sec: \${oc.env:SF_INTERVAL_SEC,0.2}
      count: 50

  - id: route
    kind: node
    plugin: schnitzel_stream.nodes.policy:KindRouter
    config:
      routes: { tick: ticks, other: rest }
      polygon: [[0, 0], [10, 0], [10, 10]]

  # the sinks
  - id: out
    kind: sink
    plugin: schnitzel_stream.nodes.dev:PrintSink
    config:
      prefix: "EVENT "
      forward: true

edges:
  - from: ticks
    to: route
  - from: route
    from_port: ticks
    to: out
    to_port: main

config: {}
`;

describe('parseGraph', () => {
  it('reads nodes, edges and ports of an upstream v2 graph', () => {
    const r = parseGraph(upstream);
    expect(r.error).toBeNull();
    const m = r.model!;
    expect(m.version).toBe(2);
    expect(m.nodes.map((n) => [n.id, n.kind, shortName(n.plugin)])).toEqual([
      ['ticks', 'source', 'TickerSource'],
      ['route', 'node', 'KindRouter'],
      ['out', 'sink', 'PrintSink'],
    ]);
    expect(m.nodes[0].config).toEqual({ interval_sec: '${oc.env:SF_INTERVAL_SEC,0.2}', count: 50 });
    expect(m.nodes[1].config.polygon).toEqual([
      [0, 0],
      [10, 0],
      [10, 10],
    ]);
    expect(m.nodes.map((n) => n.line)).toEqual([4, 11, 19]);
    expect(m.edges).toEqual([
      { from: 'ticks', to: 'route', index: 0 },
      { from: 'route', to: 'out', fromPort: 'ticks', toPort: 'main', index: 1 },
    ]);
  });

  it('accepts upstream aliases node_id, src/dst, src_port/dst_port and a missing kind', () => {
    const r = parseGraph(
      'version: 2\nnodes:\n  - node_id: a\n    plugin: m:A\n  - id: b\n    plugin: m:B\nedges:\n  - src: a\n    src_port: out\n    dst: b\n    dst_port: in\n',
    );
    expect(r.model!.nodes.map((n) => [n.id, n.kind])).toEqual([
      ['a', 'node'],
      ['b', 'node'],
    ]);
    expect(r.model!.edges).toEqual([{ from: 'a', to: 'b', fromPort: 'out', toPort: 'in', index: 0 }]);
  });

  it('reports a YAML syntax error with its line', () => {
    const r = parseGraph('version: 2\nnodes:\n  - id: a\n   plugin: [x\n');
    expect(r.model).toBeNull();
    expect(r.error).toBeTruthy();
    expect(r.errorLine).toBeGreaterThanOrEqual(3);
  });

  it('treats an empty text as an empty graph and refuses a list at the top', () => {
    expect(parseGraph('').model!.nodes).toEqual([]);
    expect(parseGraph('- a\n- b\n').error).toMatch(/mapping/);
  });
});

describe('edits keep the rest of the file', () => {
  it('round-trips untouched text byte for byte', () => {
    // A no-op edit (set a value to what it is) must not reformat anything.
    expect(setConfig(upstream, 'ticks', 'count', 50)).toBe(upstream);
  });

  it('adds a node with its config, keeping comments and blank lines', () => {
    const out = addNode(upstream, {
      id: 'extra',
      kind: 'sink',
      plugin: 'schnitzel_stream.nodes.file_sink:JsonlSink',
      config: { path: '/tmp/x.jsonl', headers: { a: 'b' } },
    });
    expect(out).toContain('# Store-and-forward with a router.');
    expect(out).toContain('- id: ticks # the heartbeat');
    expect(out).toContain('  # the sinks\n  - id: out');
    expect(out).toContain('\n\n  - id: route');
    expect(out).toContain('routes: { tick: ticks, other: rest }');
    expect(out).toContain('prefix: "EVENT "');
    const m = parseGraph(out).model!;
    expect(m.nodes.map((n) => n.id)).toEqual(['ticks', 'route', 'out', 'extra']);
    expect(m.nodes[3]).toMatchObject({ kind: 'sink', config: { path: '/tmp/x.jsonl', headers: { a: 'b' } } });
    // Everything before the new node is the original text.
    const before = upstream.slice(0, upstream.indexOf('\nedges:'));
    expect(out.startsWith(before)).toBe(true);
  });

  it('refuses a duplicate or malformed id', () => {
    expect(() => addNode(upstream, { id: 'out', kind: 'sink', plugin: 'm:X' })).toThrow(EditError);
    expect(() => addNode(upstream, { id: 'a b', kind: 'sink', plugin: 'm:X' })).toThrow(EditError);
  });

  it('removes an edge by index and keeps the other one with its ports', () => {
    const out = removeEdge(upstream, 0);
    const m = parseGraph(out).model!;
    expect(m.edges).toEqual([{ from: 'route', to: 'out', fromPort: 'ticks', toPort: 'main', index: 0 }]);
    expect(out).toContain('# the sinks');
    expect(() => removeEdge(upstream, 7)).toThrow(EditError);
  });

  it('adds an edge with ports in the file style (from/to here, src/dst in upstream files that use them)', () => {
    const out = addEdge(upstream, { from: 'ticks', to: 'out', fromPort: 'p1' });
    expect(out).toContain('  - from: ticks\n    from_port: p1\n    to: out\n');
    expect(parseGraph(out).model!.edges).toHaveLength(3);
    const src = 'version: 2\nnodes:\n  - id: a\n    plugin: m:A\n  - id: b\n    plugin: m:B\nedges:\n  - src: a\n    dst: b\n';
    const out2 = addEdge(src, { from: 'b', to: 'a', toPort: 'x' });
    expect(out2).toContain('  - src: b\n    dst: a\n    dst_port: x\n');
    expect(() => addEdge(upstream, { from: 'ticks', to: 'route' })).toThrow(/exists/);
    expect(() => addEdge(upstream, { from: 'ticks', to: 'ticks' })).toThrow(EditError);
    expect(() => addEdge(upstream, { from: 'ticks', to: 'nope' })).toThrow(/no node/);
  });

  it('creates nodes: and edges: in an empty file', () => {
    let t = addNode('', { id: 'a', kind: 'source', plugin: 'm:A' });
    t = addNode(t, { id: 'b', kind: 'sink', plugin: 'm:B' });
    t = addEdge(t, { from: 'a', to: 'b' });
    const m = parseGraph(t).model!;
    expect(m.version).toBe(2);
    expect(m.nodes.map((n) => n.id)).toEqual(['a', 'b']);
    expect(m.edges).toEqual([{ from: 'a', to: 'b', index: 0 }]);
  });

  it('removes a node with its edges', () => {
    const out = removeNode(upstream, 'route');
    const m = parseGraph(out).model!;
    expect(m.nodes.map((n) => n.id)).toEqual(['ticks', 'out']);
    expect(m.edges).toEqual([]);
    expect(out).toContain('- id: ticks # the heartbeat');
  });

  it('renames a node everywhere', () => {
    const out = renameNode(upstream, 'route', 'router');
    const m = parseGraph(out).model!;
    expect(m.nodes[1].id).toBe('router');
    expect(m.edges.map((e) => [e.from, e.to])).toEqual([
      ['ticks', 'router'],
      ['router', 'out'],
    ]);
    expect(() => renameNode(upstream, 'route', 'out')).toThrow(/exists/);
  });

  it('sets kind and plugin', () => {
    const out = setNodeField(upstream, 'out', 'plugin', 'schnitzel_stream.nodes.dev:Identity');
    expect(parseGraph(out).model!.nodes[2].plugin).toBe('schnitzel_stream.nodes.dev:Identity');
    expect(out).toContain('prefix: "EVENT "');
  });

  it('sets and removes config values, keeping comments on the key', () => {
    const src = 'version: 2\nnodes:\n  - id: a\n    plugin: m:A\n    config:\n      n: 1 # the count\n      s: "x"\n';
    const out = setConfig(src, 'a', 'n', 5);
    expect(out).toContain('n: 5 # the count');
    expect(setConfig(src, 'a', 's', 'y')).toContain('s: "y"');
    const removed = setConfig(setConfig(src, 'a', 'n', undefined), 'a', 's', undefined);
    expect(removed).not.toContain('config');
    expect(parseGraph(removed).model!.nodes[0].config).toEqual({});
    const added = setConfig('version: 2\nnodes:\n  - id: a\n    plugin: m:A\n', 'a', 'interval_sec', 0.5);
    expect(parseGraph(added).model!.nodes[0].config).toEqual({ interval_sec: 0.5 });
  });

  it('handles unusual config types (list of object, map of any, any) through the YAML fallback', () => {
    const value = fromYAML('- kind: detection\n  payload: { confidence: 0.75, tags: [a, b] }\n- kind: raw\n');
    expect(value.error).toBeNull();
    const out = setConfig(upstream, 'ticks', 'packets', value.value);
    const cfg = parseGraph(out).model!.nodes[0].config;
    expect(cfg.packets).toEqual([{ kind: 'detection', payload: { confidence: 0.75, tags: ['a', 'b'] } }, { kind: 'raw' }]);
    // A scalar replaced by a mapping, and a null.
    const out2 = setConfig(setConfig(out, 'ticks', 'count', { nested: { deep: [1, 2] } }), 'ticks', 'kind', null);
    const cfg2 = parseGraph(out2).model!.nodes[0].config;
    expect(cfg2.count).toEqual({ nested: { deep: [1, 2] } });
    expect(cfg2.kind).toBeNull();
    expect(fromYAML('[unclosed').error).toBeTruthy();
    expect(fromYAML('   ').value).toBeUndefined();
    expect(toYAML({ a: [1, 2] })).toBe('a:\n  - 1\n  - 2');
  });

  it('shows one node config as YAML', () => {
    expect(nodeConfigYAML(upstream, 'out')).toBe('prefix: "EVENT "\nforward: true\n');
    expect(nodeConfigYAML(upstream, 'nope')).toBeNull();
  });

  it('picks a free id', () => {
    const m = parseGraph(upstream).model!;
    expect(uniqueId(m, 'out')).toBe('out_2');
    expect(uniqueId(m, 'JsonlSink')).toBe('JsonlSink');
    expect(uniqueId(null, '')).toBe('node');
  });
});

describe('the repository graphs', () => {
  it('survive a rewrite byte for byte and parse into blocks', async () => {
    const fs = await import('node:fs');
    const path = await import('node:path');
    const dir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../configs/graphs');
    const files = fs.readdirSync(dir).filter((f: string) => f.endsWith('_v2.yaml'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      expect(rewrite(text), f).toBe(text);
      const r = parseGraph(text);
      expect(r.error, f).toBeNull();
      expect(r.model!.nodes.length, f).toBeGreaterThan(0);
      for (const e of r.model!.edges) {
        expect(r.model!.nodes.some((n) => n.id === e.from), `${f}: ${e.from}`).toBe(true);
      }
    }
  });
});
