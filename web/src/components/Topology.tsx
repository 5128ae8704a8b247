// The graph page's canvas: nodes laid out once per topology (dagre, left to
// right); the live counters are new data on the same positions, so a poll
// never moves anything.
import {
  applyNodeChanges,
  Background,
  Controls,
  type Edge as FlowEdge,
  Handle,
  type Node as FlowNode,
  type NodeChange,
  type NodeProps,
  Position,
  MarkerType,
  ReactFlow,
  type ReactFlowInstance,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { memo, useEffect, useMemo, useRef, useState } from 'react';
import { count, rate } from './bits';
import { shortName } from '../graphmodel';
import { layout } from '../layout';
import type { Edge, NodeStatus } from '../types';

export type Health = 'failed' | 'warn' | 'ok' | 'idle';

export function health(n: NodeStatus): Health {
  if (n.failed) return 'failed';
  if (n.dropped > 0 || n.errors > 0) return 'warn';
  if (n.consumed_per_sec > 0 || n.produced_per_sec > 0) return 'ok';
  return 'idle';
}

type MetricData = { n: NodeStatus; selected: boolean };
type MetricNodeT = FlowNode<MetricData, 'metric'>;

const MetricNode = memo(function MetricNode({ data }: NodeProps<MetricNodeT>) {
  const n = data.n;
  const h = health(n);
  const fill = n.inbox_max > 0 ? Math.min(1, n.inbox_depth / n.inbox_max) : 0;
  return (
    <div
      className={'node-card health-' + h + (data.selected ? ' selected' : '')}
      data-testid="node-card"
      data-node={n.id}
      data-health={h}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} className={n.kind === 'source' ? 'handle-hidden' : ''} />
      <div className="node-title">
        <strong>{n.id}</strong>
        <span className="node-kind">{n.kind}</span>
      </div>
      <div className="node-plugin" title={n.plugin}>
        {shortName(n.plugin)}
      </div>
      <div className="node-rates">
        {n.kind !== 'source' ? (
          <span title="consumed per second" data-testid="node-consumed">
            in {rate(n.consumed_per_sec)}/s
          </span>
        ) : (
          <span />
        )}
        {n.kind !== 'sink' && (
          <span title="produced per second" data-testid="node-produced">
            out {rate(n.produced_per_sec)}/s
          </span>
        )}
      </div>
      {n.kind !== 'source' && (
        <div className="inbox" title={`inbox ${n.inbox_depth} of ${n.inbox_max}`}>
          <div className="inbox-bar">
            <div className="inbox-fill" style={{ width: `${(fill * 100).toFixed(1)}%` }} />
          </div>
          <span>
            {n.inbox_depth}/{n.inbox_max}
          </span>
        </div>
      )}
      <div className="node-counts">
        <span className={n.dropped > 0 ? 'warn-text' : ''}>drops {count(n.dropped)}</span>
        <span className={n.errors > 0 ? 'err-text' : ''}>errors {count(n.errors)}</span>
      </div>
      <Handle type="source" position={Position.Right} isConnectable={false} className={n.kind === 'sink' ? 'handle-hidden' : ''} />
    </div>
  );
});

const nodeTypes = { metric: MetricNode };

export function Topology({
  nodes,
  edges,
  selected,
  onNode,
  onEdge,
  fitKey,
}: {
  nodes: NodeStatus[];
  edges: Edge[];
  selected: string | null;
  onNode: (id: string) => void;
  onEdge: (e: Edge) => void;
  fitKey: string; // the canvas changed size (side panel): fit again
}) {
  const rf = useRef<ReactFlowInstance<MetricNodeT, FlowEdge> | null>(null);
  const shape = JSON.stringify([nodes.map((n) => n.id), edges.map((e) => [e.from, e.to, e.from_port ?? '', e.to_port ?? ''])]);
  // Re-layout only when the topology changes, not on every poll.
  const positions = useMemo(() => layout(nodes, edges, { w: 210, h: 130 }), [shape]); // eslint-disable-line react-hooks/exhaustive-deps
  // Nodes live in state so that xyflow's measurements survive a poll: a
  // poll swaps the data of the same node objects' copies.
  const [flowNodes, setFlowNodes] = useState<MetricNodeT[]>([]);
  useEffect(() => {
    setFlowNodes((prev) => {
      const byId = new Map(prev.map((n) => [n.id, n]));
      return nodes.map((n) => {
        const data = { n, selected: n.id === selected };
        const position = positions.get(n.id) ?? { x: 0, y: 0 };
        const old = byId.get(n.id);
        if (old) return { ...old, data, position };
        return { id: n.id, type: 'metric', position, data, draggable: false, connectable: false, ariaLabel: `node ${n.id}` } as MetricNodeT;
      });
    });
  }, [nodes, positions, selected]);
  useEffect(() => {
    const t = window.setTimeout(() => rf.current?.fitView({ padding: 0.15, maxZoom: 1.2, duration: 200 }), 60);
    return () => window.clearTimeout(t);
  }, [fitKey, shape]); // eslint-disable-line react-hooks/exhaustive-deps
  const onNodesChange = (changes: NodeChange<MetricNodeT>[]) => setFlowNodes((ns) => applyNodeChanges(changes, ns));
  const ids = new Set(nodes.map((n) => n.id));
  const flowEdges: FlowEdge[] = edges
    .filter((e) => ids.has(e.from) && ids.has(e.to))
    .map((e, i) => ({
      id: `e${i}`,
      source: e.from,
      target: e.to,
      label: e.from_port || e.to_port ? `${e.from_port ?? ''}${e.to_port ? ' → ' + e.to_port : ''}` : undefined,
      data: { edge: e },
      markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
      ariaLabel: `edge ${e.from} to ${e.to}: tap`,
    }));
  const big = nodes.length > 150;
  return (
    <ReactFlow<MetricNodeT, FlowEdge>
      nodes={flowNodes}
      edges={flowEdges}
      nodeTypes={nodeTypes}
      onNodesChange={onNodesChange}
      onInit={(inst) => {
        rf.current = inst;
      }}
      fitView
      fitViewOptions={{ padding: 0.15, maxZoom: 1.2 }}
      minZoom={0.05}
      nodesDraggable={false}
      nodesConnectable={false}
      onlyRenderVisibleElements={big}
      onNodeClick={(_, n) => onNode(n.id)}
      onSelectionChange={({ nodes: sel }) => {
        // Keyboard: Tab to a node, Enter selects it (xyflow) -> the side panel.
        if (sel.length === 1) onNode(sel[0].id);
      }}
      onEdgeClick={(_, e) => onEdge((e.data as { edge: Edge }).edge)}
      proOptions={{ hideAttribution: true }}
    >
      <Background gap={24} />
      <Controls showInteractive={false} />
    </ReactFlow>
  );
}
