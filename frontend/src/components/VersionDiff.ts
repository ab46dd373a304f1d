// What the version history's canvas shows for a diff: the newer document plus what the
// older one had and the newer one dropped, each node and edge marked added, removed or
// changed. Pure functions: no React, no fetch.
import { NODE_HEIGHT, NODE_WIDTH, edgeId } from "../graph";
import type { FieldChange, VersionDiff } from "../panelTypes";
import type { DocumentEdge, DocumentNode, PipelineDocument } from "../types";

const GAP = 40; // between a removed node moved aside and the node in its place

export type DiffMark = "added" | "removed" | "changed";

export interface CanvasMarks {
  /** By node key. */
  nodes: Map<string, DiffMark>;
  /** By edge id (graph.ts edgeId). */
  edges: Map<string, DiffMark>;
}

const idOf = (edge: DocumentEdge) => edgeId(edge.source, edge.source_handle ?? "out", edge.target);

/** `newer` (the document of `diff.to_version`) with the removed nodes and edges put back. */
export function diffCanvas(
  newer: PipelineDocument,
  diff: VersionDiff,
): { document: PipelineDocument; marks: CanvasMarks } {
  const nodes = new Map<string, DiffMark>();
  for (const node of diff.nodes.added) nodes.set(node.key, "added");
  for (const node of diff.nodes.removed) nodes.set(node.key, "removed");
  for (const node of diff.nodes.changed) nodes.set(node.key, "changed");
  const edges = new Map<string, DiffMark>();
  for (const edge of diff.edges.added) edges.set(idOf(edge), "added");
  for (const edge of diff.edges.removed) edges.set(idOf(edge), "removed");
  const kept = newer.nodes ?? [];
  const document = {
    ...newer,
    nodes: [...kept, ...diff.nodes.removed.map((node) => movedAside(node, kept))],
    edges: [...(newer.edges ?? []), ...diff.edges.removed],
  };
  return { document, marks: { nodes, edges } };
}

function overlaps(a: DocumentNode, b: DocumentNode): boolean {
  const [ax, ay, bx, by] = [a.position?.x ?? 0, a.position?.y ?? 0, b.position?.x ?? 0, b.position?.y ?? 0];
  return Math.abs(ax - bx) < NODE_WIDTH && Math.abs(ay - by) < NODE_HEIGHT;
}

/** A removed node often had the place of the node that replaced it: it is drawn below
 * that node instead of under it, so both stay readable. */
function movedAside(removed: DocumentNode, kept: DocumentNode[]): DocumentNode {
  const siblings = kept.filter((node) => (node.parent ?? null) === (removed.parent ?? null));
  let node = removed;
  for (let tries = 0; tries < kept.length && siblings.some((sibling) => overlaps(sibling, node)); tries += 1) {
    const { x = 0, y = 0 } = node.position ?? {};
    node = { ...node, position: { x, y: y + NODE_HEIGHT + GAP } };
  }
  return node;
}

/** How many things differ; 0 when the two versions have the same content. */
export function changeCount(diff: VersionDiff): number {
  return (
    diff.pipeline.length +
    diff.nodes.added.length +
    diff.nodes.removed.length +
    diff.nodes.changed.length +
    diff.edges.added.length +
    diff.edges.removed.length
  );
}

/** A changed value as a person reads it: short JSON, cut after 80 characters. */
export function shownValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** Node fields in words: the history stores the position as two fields. */
export function changeLabel(change: FieldChange): string {
  if (change.field === "position_x" || change.field === "position_y") return "position";
  return change.field;
}
