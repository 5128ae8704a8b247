// Automatic left-to-right layout (dagre) for the graph page and the blocks view.
import dagre from '@dagrejs/dagre';

export interface Box {
  x: number;
  y: number;
}

export function layout(
  nodes: { id: string }[],
  edges: { from: string; to: string }[],
  size = { w: 220, h: 120 },
): Map<string, Box> {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 30, ranksep: 70, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  const ids = new Set<string>();
  for (const n of nodes) {
    if (ids.has(n.id)) continue;
    ids.add(n.id);
    g.setNode(n.id, { width: size.w, height: size.h });
  }
  edges.forEach((e, i) => {
    if (ids.has(e.from) && ids.has(e.to) && e.from !== e.to) g.setEdge(e.from, e.to, {}, String(i));
  });
  dagre.layout(g);
  const out = new Map<string, Box>();
  for (const id of ids) {
    const n = g.node(id) as { x: number; y: number } | undefined;
    out.set(id, n ? { x: n.x - size.w / 2, y: n.y - size.h / 2 } : { x: 0, y: 0 });
  }
  return out;
}
