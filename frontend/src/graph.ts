// The pipeline document <-> React Flow's nodes and edges, and the rules a new
// connection must pass while it is dragged. Pure functions: no React, no fetch.
import type { Connection, Edge, Node } from "@xyflow/react";
import type { DocumentEdge, DocumentNode, JsonObject, NodeType, ParameterDefinition, PipelineDocument } from "./types";

/** What a canvas node carries besides its id (= the node key) and position. */
export interface PipelineNodeData extends Record<string, unknown> {
  type: string;
  label: string;
  config: JsonObject;
  notes: string;
  settings: JsonObject;
  parent: string | null;
}

export type PipelineNode = Node<PipelineNodeData, "pipeline">;
export type PipelineEdge = Edge;

/** A parameter as the form edits it: its default as text, typed again on save. */
export interface ParameterRow {
  name?: string;
  type?: string;
  required?: boolean;
  default?: string;
  description?: string;
  choices?: string[];
}

export interface PipelineMeta {
  name: string;
  description: string;
  parameters: ParameterRow[];
}

export type Catalogue = Map<string, NodeType>;

export const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const INPUT_HANDLE = "in";

export function edgeId(source: string, handle: string, target: string): string {
  return `${source}:${handle}->${target}`;
}

export function makeEdge(source: string, handle: string, target: string): PipelineEdge {
  return { id: edgeId(source, handle, target), source, sourceHandle: handle, target, targetHandle: INPUT_HANDLE };
}

/** The node's config with the catalogue's defaults filled in where the document has none,
 * so the form shows the values the engine will use. */
export function withDefaults(config: JsonObject | undefined, nodeType: NodeType | undefined): JsonObject {
  return { ...(nodeType?.default_config ?? {}), ...(config ?? {}) };
}

export function toFlow(document: PipelineDocument, catalogue: Catalogue) {
  const nodes: PipelineNode[] = (document.nodes ?? []).map((node) => ({
    id: node.key,
    type: "pipeline",
    position: { x: node.position?.x ?? 0, y: node.position?.y ?? 0 },
    data: {
      type: node.type,
      label: node.label ?? "",
      config: withDefaults(node.config, catalogue.get(node.type)),
      notes: node.notes ?? "",
      settings: node.settings ?? {},
      parent: node.parent ?? null,
    },
  }));
  const edges = (document.edges ?? []).map((edge) => makeEdge(edge.source, edge.source_handle ?? "out", edge.target));
  const meta: PipelineMeta = {
    name: document.name,
    description: document.description ?? "",
    parameters: (document.parameters ?? []).map(parameterRow),
  };
  return { nodes, edges, meta };
}

function parameterRow(definition: ParameterDefinition): ParameterRow {
  const row: ParameterRow = { name: definition.name, type: definition.type, required: definition.required ?? false };
  if (definition.default !== undefined && definition.default !== null) row.default = String(definition.default);
  if (definition.description) row.description = definition.description;
  if (definition.choices) row.choices = definition.choices.map(String);
  return row;
}

/** A default typed by its parameter's type. Text that does not parse is sent as it is, so
 * the server's answer names the field (`parameters[0].default: must be an integer`). */
function typedDefault(type: string | undefined, text: string): unknown {
  const trimmed = text.trim();
  if (type === "integer" && /^[+-]?\d+$/.test(trimmed)) return Number(trimmed);
  if (type === "number" && trimmed !== "" && Number.isFinite(Number(trimmed))) return Number(trimmed);
  if (type === "boolean" && (trimmed === "true" || trimmed === "false")) return trimmed === "true";
  return text;
}

function parameterDefinition(row: ParameterRow): ParameterDefinition {
  const definition: ParameterDefinition = {
    name: row.name ?? "",
    type: row.type ?? "string",
    required: row.required ?? false,
    description: row.description ?? "",
  };
  if (row.default !== undefined && row.default !== "") definition.default = typedDefault(row.type, row.default);
  if (row.choices?.length || row.type === "enum") definition.choices = row.choices ?? [];
  return definition;
}

export function toDocument(nodes: PipelineNode[], edges: PipelineEdge[], meta: PipelineMeta): PipelineDocument {
  const documentNodes: DocumentNode[] = nodes.map((node) => ({
    key: node.id,
    type: node.data.type,
    label: node.data.label,
    config: node.data.config,
    position: { x: Math.round(node.position.x), y: Math.round(node.position.y) },
    parent: node.data.parent,
    notes: node.data.notes,
    settings: node.data.settings,
  }));
  const documentEdges: DocumentEdge[] = edges.map((edge) => ({
    source: edge.source,
    source_handle: edge.sourceHandle ?? "out",
    target: edge.target,
  }));
  return {
    name: meta.name,
    description: meta.description,
    parameters: meta.parameters.map(parameterDefinition),
    nodes: documentNodes,
    edges: documentEdges,
  };
}

function sortedJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedJson);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortedJson((value as JsonObject)[key])]),
    );
  }
  return value;
}

/** A text that is equal for equal documents (order of nodes, edges and keys ignored):
 * what "unsaved changes" compares. */
export function documentFingerprint(document: PipelineDocument): string {
  const nodes = [...(document.nodes ?? [])].sort((a, b) => a.key.localeCompare(b.key));
  const edges = (document.edges ?? []).map((e) => edgeId(e.source, e.source_handle ?? "out", e.target)).sort();
  return JSON.stringify(sortedJson({ ...document, nodes, edges }));
}

/** `input_dataset_1`, `input_dataset_2`, …: the first key of this type not yet taken. */
export function newKey(typeKey: string, taken: Set<string>): string {
  const base = typeKey
    .replace(/[^A-Za-z0-9_]/g, "_")
    .replace(/^([^A-Za-z_])/, "_$1")
    .slice(0, 58);
  for (let n = 1; ; n += 1) {
    const key = `${base}_${n}`;
    if (!taken.has(key)) return key;
  }
}

function reaches(from: string, to: string, edges: PipelineEdge[]): boolean {
  const successors = new Map<string, string[]>();
  for (const edge of edges) successors.set(edge.source, [...(successors.get(edge.source) ?? []), edge.target]);
  const seen = new Set([from]);
  const stack = [from];
  while (stack.length) {
    const current = stack.pop()!;
    if (current === to) return true;
    for (const next of successors.get(current) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        stack.push(next);
      }
    }
  }
  return false;
}

/** Why this connection is refused, or null if it may be made. The server checks the
 * same rules on save; checking them here refuses the edge while it is being dragged. */
export function connectionProblem(
  connection: Connection | Edge,
  nodes: PipelineNode[],
  edges: PipelineEdge[],
  catalogue: Catalogue,
): string | null {
  const { source, target } = connection;
  const handle = connection.sourceHandle ?? "out";
  if (source === target) return "A node cannot connect to itself; use a Loop to repeat steps.";
  const sourceNode = nodes.find((n) => n.id === source);
  const targetNode = nodes.find((n) => n.id === target);
  if (!sourceNode || !targetNode) return "Both ends must be nodes on the canvas.";
  if (catalogue.get(targetNode.data.type)?.accepts_input === false) {
    return `${catalogue.get(targetNode.data.type)?.label ?? targetNode.data.type} takes no input.`;
  }
  if (sourceNode.data.parent !== targetNode.data.parent) {
    return "An edge cannot cross a Loop boundary; connect to the Loop node itself.";
  }
  if (edges.some((e) => e.source === source && (e.sourceHandle ?? "out") === handle && e.target === target)) {
    return "These handles are already connected.";
  }
  if (reaches(target, source, edges)) return "This connection would make a cycle; use a Loop to repeat steps.";
  return null;
}
