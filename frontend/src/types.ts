// Shapes of what the API and the page send the designer. They mirror
// pipelines/documents.py (the document), nodes/registry.py (the catalogue) and
// pipelines/engine/events.py (live run payloads).
import type { RJSFSchema } from "@rjsf/utils";

export type JsonObject = Record<string, unknown>;

/** One entry of GET /api/node-types/. */
export interface NodeType {
  key: string;
  category: string;
  label: string;
  description: string;
  config_schema: RJSFSchema;
  expression_fields: string[];
  needs_input: boolean;
  is_container: boolean;
  /** With the default config; POST /api/node-types/handles/ answers for any config. */
  handles: string[];
  default_config: JsonObject;
  /** False: the node offers no input handle. */
  accepts_input: boolean;
}

/** One entry of GET /api/operators/: a cleaning operator of Data Cleaning's chain. */
export interface Operator {
  name: string;
  kind: string;
  label: string;
  description: string;
  version: string;
  config_schema: RJSFSchema;
  default_config: JsonObject;
}

/** One entry of GET /api/datasets/ (a page of them). */
export interface Dataset {
  id: number;
  name: string;
  description: string;
  latest_version: number | null;
}

export interface Page<T> {
  count: number;
  next: string | null;
  results: T[];
}

/** What POST /api/pipelines/{id}/nodes/{key}/test/ answers once the node ran. */
export interface NodeTestResult {
  output: unknown;
  handles: string[] | null;
  records_in: number | null;
  records_out: number | null;
  logs: { level: string; message: string; seconds: number }[];
  error: string | null;
  duration_ms: number;
  inputs_from_run: number | null;
}

/** The 202 answer of a node test that outlasted its request. */
export interface NodeTestPending {
  request_id: string;
  state: "pending";
  result_url: string;
}

/** GET /api/runs/{id}/ (the fields the designer reads). */
export interface RunDetail {
  id: number;
  version: number;
  state: string;
  params: JsonObject;
}

export interface ParameterDefinition {
  name: string;
  type: string;
  required?: boolean;
  default?: unknown;
  description?: string;
  choices?: unknown[];
}

export interface DocumentNode {
  key: string;
  type: string;
  label?: string;
  config?: JsonObject;
  position?: { x: number; y: number };
  parent?: string | null;
  notes?: string;
  settings?: JsonObject;
}

export interface DocumentEdge {
  source: string;
  source_handle?: string;
  target: string;
}

export interface PipelineDocument {
  name: string;
  description?: string;
  parameters?: ParameterDefinition[];
  nodes?: DocumentNode[];
  edges?: DocumentEdge[];
}

/** A server validation error: `field` is a path like `nodes[0].config.dataset`. */
export interface FieldError {
  field: string;
  message: string;
  node?: string | null;
}

export interface RunPayload {
  id: number;
  pipeline: number;
  version: number;
  state: string;
  error: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface NodeRunPayload {
  id: number;
  node_key: string;
  iteration: string;
  state: string;
  attempt: number;
  version: number;
  progress: number | null;
  records_in: number | null;
  records_out: number | null;
  output: unknown;
  error: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface LogPayload {
  id: number;
  node_run: number;
  node_key: string;
  iteration: string;
  level: string;
  message: string;
  created_at: string | null;
}

/** What the Django template hands the bundle (json_script "designer-config"). */
export interface DesignerConfig {
  pipeline: number;
  csrfToken: string;
  urls: {
    graph: string;
    runs: string;
    nodeTypes: string;
    /** The run page of run {id}. */
    runPage: string;
    /** The websocket of run {id}. */
    runSocket: string;
  };
  /** JSON Schema of the document's `parameters` (pipelines/documents.py). */
  parameterSchema: RJSFSchema;
  /** JSON Schema of a node's execution settings (nodes/registry.py). */
  settingsSchema: RJSFSchema;
}
