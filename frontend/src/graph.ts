// The pipeline document <-> React Flow's nodes and edges, and the rules a new
// connection must pass while it is dragged. Pure functions: no React, no fetch.
import type { Connection, Edge, Node } from "@xyflow/react";
import type { DocumentEdge, DocumentNode, JsonObject, NodeType, ParameterDefinition, PipelineDocument } from "./types";

/** What a canvas node carries besides its id (= the node key) and position. A node inside
 * a Loop has the Loop's key as `parentId` (React Flow's sub-flows), and its position is
 * relative to the Loop's, as in the document. */
export interface PipelineNodeData extends Record<string, unknown> {
  type: string;
  label: string;
  config: JsonObject;
  notes: string;
  settings: JsonObject;
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
/** Sizes on the canvas (designer.css draws cards and containers to match). */
export const NODE_WIDTH = 220;
export const NODE_HEIGHT = 110;
/** A container's title bar: its children start below it. */
export const CONTAINER_HEADER = 70;
export const CONTAINER_PADDING = 24;
export const CONTAINER_MIN = { width: 420, height: 220 };

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

/** React Flow draws a child only after its parent: parents first, else in the given order. */
export function parentsFirst(nodes: PipelineNode[]): PipelineNode[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const placed = new Set<string>();
  const ordered: PipelineNode[] = [];
  const place = (node: PipelineNode, seen: Set<string>) => {
    if (placed.has(node.id) || seen.has(node.id)) return;
    seen.add(node.id);
    const parent = node.parentId ? byId.get(node.parentId) : undefined;
    if (parent) place(parent, seen);
    placed.add(node.id);
    ordered.push(node);
  };
  for (const node of nodes) place(node, new Set());
  return ordered;
}

export function toFlow(document: PipelineDocument, catalogue: Catalogue) {
  const keys = new Set((document.nodes ?? []).map((n) => n.key));
  const nodes: PipelineNode[] = (document.nodes ?? []).map((node) => ({
    id: node.key,
    type: "pipeline",
    position: { x: node.position?.x ?? 0, y: node.position?.y ?? 0 },
    // A parent that is not in the document stays in it (the server names the problem).
    ...(node.parent && keys.has(node.parent) ? { parentId: node.parent } : {}),
    data: {
      type: node.type,
      label: node.label ?? "",
      config: withDefaults(node.config, catalogue.get(node.type)),
      notes: node.notes ?? "",
      settings: node.settings ?? {},
    },
  }));
  const edges = (document.edges ?? []).map((edge) => makeEdge(edge.source, edge.source_handle ?? "out", edge.target));
  const meta: PipelineMeta = {
    name: document.name,
    description: document.description ?? "",
    parameters: (document.parameters ?? []).map(parameterRow),
  };
  return { nodes: parentsFirst(nodes), edges, meta };
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
    parent: node.parentId ?? null,
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
  if ((sourceNode.parentId ?? null) !== (targetNode.parentId ?? null)) {
    return "An edge cannot cross a Loop boundary; connect to the Loop node itself.";
  }
  if (edges.some((e) => e.source === source && (e.sourceHandle ?? "out") === handle && e.target === target)) {
    return "These handles are already connected.";
  }
  if (reaches(target, source, edges)) return "This connection would make a cycle; use a Loop to repeat steps.";
  return null;
}

function sizeOf(node: PipelineNode): { width: number; height: number } {
  return { width: node.measured?.width ?? NODE_WIDTH, height: node.measured?.height ?? NODE_HEIGHT };
}

/** Each container's size: around its children (the one being dragged excepted, so a
 * child can be dragged out instead of stretching its Loop), and at least CONTAINER_MIN. */
export function containerSizes(
  nodes: PipelineNode[],
  catalogue: Catalogue,
): Map<string, { width: number; height: number }> {
  const sizes = new Map<string, { width: number; height: number }>();
  const children = new Map<string, PipelineNode[]>();
  for (const node of nodes) {
    if (node.parentId && !node.dragging) children.set(node.parentId, [...(children.get(node.parentId) ?? []), node]);
  }
  // Inner containers first, so an outer one fits the inner one's size.
  const depth = (node: PipelineNode): number => {
    let count = 0;
    for (let id = node.parentId; id && count < nodes.length; count += 1) id = nodes.find((n) => n.id === id)?.parentId;
    return count;
  };
  const containers = nodes.filter((n) => catalogue.get(n.data.type)?.is_container).sort((a, b) => depth(b) - depth(a));
  for (const container of containers) {
    let width = CONTAINER_MIN.width;
    let height = CONTAINER_MIN.height;
    for (const child of children.get(container.id) ?? []) {
      const size = sizes.get(child.id) ?? sizeOf(child);
      width = Math.max(width, child.position.x + size.width + CONTAINER_PADDING);
      height = Math.max(height, child.position.y + size.height + CONTAINER_PADDING);
    }
    sizes.set(container.id, { width: Math.round(width), height: Math.round(height) });
  }
  return sizes;
}

/** A node's position on the canvas (its own is relative to its parent's). */
export function absolutePosition(node: PipelineNode, nodes: PipelineNode[]): { x: number; y: number } {
  let { x, y } = node.position;
  let parentId = node.parentId;
  for (let guard = 0; parentId && guard < nodes.length; guard += 1) {
    const parent = nodes.find((n) => n.id === parentId);
    if (!parent) break;
    x += parent.position.x;
    y += parent.position.y;
    parentId = parent.parentId;
  }
  return { x, y };
}

/** The keys of these nodes and of everything inside them. */
export function withDescendants(keys: Set<string>, nodes: PipelineNode[]): Set<string> {
  const result = new Set(keys);
  let grew = true;
  while (grew) {
    grew = false;
    for (const node of nodes) {
      if (node.parentId && result.has(node.parentId) && !result.has(node.id)) {
        result.add(node.id);
        grew = true;
      }
    }
  }
  return result;
}

/** The container a node put at `point` (canvas coordinates) goes into: the innermost one
 * whose box holds the point, except those in `excluded` (the node and what it holds). */
export function containerAt(
  point: { x: number; y: number },
  nodes: PipelineNode[],
  sizes: Map<string, { width: number; height: number }>,
  excluded: Set<string> = new Set(),
): string | null {
  let best: { id: string; area: number } | null = null;
  for (const node of nodes) {
    const size = sizes.get(node.id);
    if (!size || excluded.has(node.id)) continue;
    const { x, y } = absolutePosition(node, nodes);
    const inside = point.x >= x && point.x <= x + size.width && point.y >= y && point.y <= y + size.height;
    if (inside && (!best || size.width * size.height < best.area))
      best = { id: node.id, area: size.width * size.height };
  }
  return best?.id ?? null;
}

/** A position inside a container for a point given relative to its corner: below its
 * title bar, off its left edge. */
export function insideContainer(position: { x: number; y: number }): { x: number; y: number } {
  return {
    x: Math.max(CONTAINER_PADDING / 2, Math.round(position.x)),
    y: Math.max(CONTAINER_HEADER, Math.round(position.y)),
  };
}

/** The graph with node `key` moved into container `parent` (null: onto the canvas),
 * where it is on screen. Its edges that would cross the Loop's boundary are dropped. */
export function reparent(
  nodes: PipelineNode[],
  edges: PipelineEdge[],
  key: string,
  parent: string | null,
): { nodes: PipelineNode[]; edges: PipelineEdge[]; dropped: number } {
  const node = nodes.find((n) => n.id === key);
  if (!node || (node.parentId ?? null) === parent) return { nodes, edges, dropped: 0 };
  const absolute = absolutePosition(node, nodes);
  const parentNode = parent ? nodes.find((n) => n.id === parent) : undefined;
  let position = absolute;
  if (parentNode) {
    const corner = absolutePosition(parentNode, nodes);
    position = insideContainer({ x: absolute.x - corner.x, y: absolute.y - corner.y });
  }
  const moved: PipelineNode = { ...node, position, parentId: parent ?? undefined };
  if (!parent) delete moved.parentId;
  const parentOf = new Map(nodes.map((n) => [n.id, n.id === key ? parent : (n.parentId ?? null)]));
  const kept = edges.filter(
    (e) => (e.source !== key && e.target !== key) || parentOf.get(e.source) === parentOf.get(e.target),
  );
  return {
    nodes: parentsFirst(nodes.map((n) => (n.id === key ? moved : n))),
    edges: kept,
    dropped: edges.length - kept.length,
  };
}
