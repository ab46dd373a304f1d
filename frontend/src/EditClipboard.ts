// Copy and paste of canvas nodes: the copied nodes keep their type, label, notes, config
// and settings, the edges between them, and Loop children; pasted ones get new keys.
// The clipboard is kept in localStorage, so nodes can be pasted into another pipeline.
import {
  absolutePosition,
  makeEdge,
  newKey,
  parentsFirst,
  withDescendants,
  type PipelineEdge,
  type PipelineNode,
} from "./graph";
import type { DocumentEdge, DocumentNode } from "./types";

const STORAGE_KEY = "datamate.designer.clipboard";
const PASTE_OFFSET = 40;

interface Clip {
  nodes: (DocumentNode & { absolute: { x: number; y: number } })[];
  edges: DocumentEdge[];
}

let memory: Clip | null = null;

/** Copies the selected nodes (with what is inside a selected Loop); returns how many. */
export function copyNodes(nodes: PipelineNode[], edges: PipelineEdge[]): number {
  const keys = withDescendants(new Set(nodes.filter((n) => n.selected).map((n) => n.id)), nodes);
  if (!keys.size) return 0;
  const clip: Clip = {
    nodes: nodes
      .filter((n) => keys.has(n.id))
      .map((n) => ({
        key: n.id,
        type: n.data.type,
        label: n.data.label,
        config: n.data.config,
        notes: n.data.notes,
        settings: n.data.settings,
        parent: n.parentId ?? null,
        position: n.position,
        absolute: absolutePosition(n, nodes),
      })),
    edges: edges
      .filter((e) => keys.has(e.source) && keys.has(e.target))
      .map((e) => ({ source: e.source, source_handle: e.sourceHandle ?? "out", target: e.target })),
  };
  memory = clip;
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(clip));
  } catch {
    // Storage full or disabled: the copy still works in this page.
  }
  return keys.size;
}

function readClip(): Clip | null {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored) return JSON.parse(stored) as Clip;
  } catch {
    // Unreadable: fall back to this page's copy.
  }
  return memory;
}

/** The graph with the clipboard's nodes added (selected, the rest deselected), moved a
 * little for each paste so copies do not hide each other; null if nothing was copied. */
export function pasteNodes(
  nodes: PipelineNode[],
  edges: PipelineEdge[],
  times: number,
): { nodes: PipelineNode[]; edges: PipelineEdge[] } | null {
  const clip = readClip();
  if (!clip?.nodes.length) return null;
  const taken = new Set(nodes.map((n) => n.id));
  const renamed = new Map<string, string>();
  for (const node of clip.nodes) {
    const key = newKey(node.key.replace(/_\d+$/, ""), taken);
    taken.add(key);
    renamed.set(node.key, key);
  }
  const existing = new Set(nodes.map((n) => n.id));
  const offset = PASTE_OFFSET * times;
  const pasted: PipelineNode[] = clip.nodes.map((node) => {
    const copiedParent = node.parent ? renamed.get(node.parent) : undefined;
    // Inside a copied Loop: where it was in it. Inside a Loop still here: next to the
    // original. Otherwise on the canvas itself.
    const parentId = copiedParent ?? (node.parent && existing.has(node.parent) ? node.parent : undefined);
    const base = parentId ? node.position! : node.absolute;
    const shift = copiedParent ? 0 : offset;
    return {
      id: renamed.get(node.key)!,
      type: "pipeline",
      position: { x: base.x + shift, y: base.y + shift },
      ...(parentId ? { parentId } : {}),
      selected: !copiedParent,
      data: {
        type: node.type,
        label: node.label ?? "",
        config: structuredClone(node.config ?? {}),
        notes: node.notes ?? "",
        settings: structuredClone(node.settings ?? {}),
      },
    };
  });
  const pastedEdges = clip.edges.map((e) =>
    makeEdge(renamed.get(e.source)!, e.source_handle ?? "out", renamed.get(e.target)!),
  );
  return {
    nodes: parentsFirst([...nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...pasted]),
    edges: [...edges, ...pastedEdges],
  };
}
