// JSON shapes of schnitzel serve's API (internal/serve/types.go, api, compat).

export type GraphState = 'starting' | 'running' | 'stopped' | 'failed' | 'backoff' | string;

export interface GraphStatus {
  name: string;
  state: GraphState;
  desired: string;
  status?: string;
  since: string;
  restarts: number;
  backoff_until?: string;
  in_per_sec: number;
  out_per_sec: number;
  dropped: number;
  errors: number;
  last_error?: string;
  reload_error?: string;
  file: string;
  origin?: string;
  generation: number;
}

export interface NodeStatus {
  id: string;
  plugin: string;
  kind: string;
  consumed: number;
  produced: number;
  consumed_per_sec: number;
  produced_per_sec: number;
  inbox_depth: number;
  inbox_max: number;
  dropped: number;
  errors: number;
  failed: boolean;
  last_error?: string;
}

export interface Edge {
  from: string;
  from_port?: string;
  to: string;
  to_port?: string;
}

export interface GraphDetail extends GraphStatus {
  yaml: string;
  nodes: NodeStatus[] | null;
  edges: Edge[] | null;
  env?: Record<string, string>;
  report: unknown;
}

export interface Diag {
  file: string;
  line: number;
  column?: number;
  severity: 'error' | 'warning' | string;
  subject?: string;
  message: string;
}

export interface ValidateResult {
  graph?: string;
  valid: boolean;
  errors: Diag[] | null;
  warnings: Diag[] | null;
}

export interface ConfigField {
  key: string;
  type: string;
  default?: unknown;
  required?: boolean;
  enum?: unknown[];
  doc?: string;
  examples?: string[];
  advanced?: boolean;
  deprecated?: string;
  secret?: boolean;
}

export interface PluginSpec {
  name: string;
  role: string;
  input_kinds?: string[];
  output_kinds?: string[];
  output_ports?: string[];
  summary?: string;
  description?: string;
  stability?: string;
  config: ConfigField[] | null;
}

export interface QueueInfo {
  path: string;
  graphs: string[];
  nodes?: { graph: string; node: string; plugin: string }[];
  rows: number;
  leased: number;
  retrying: number;
  dead: number;
  oldest_age_sec: number;
  error?: string;
}

export interface QueueRow {
  seq: number;
  key?: string;
  packet_id?: string;
  ts?: string;
  kind?: string;
  source_id?: string;
  attempts?: number;
  last_error?: string;
  payload?: unknown;
}

export interface AuditEvent {
  event_id?: string;
  ts: string;
  actor: string;
  action: string;
  target: string;
  status: string;
  reason?: string;
  request_id?: string;
  meta?: Record<string, unknown>;
}

export interface StreamStatus {
  id: string;
  graph: string;
  state: GraphState;
  status: string;
  restarts: number;
  last_error: string;
  in_per_sec?: number;
  out_per_sec?: number;
}

export interface FleetResult {
  id: string;
  graph: string;
  action: string;
  input_type?: string;
  state?: string;
  error?: string;
}
