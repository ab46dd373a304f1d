// Auto-layout with dagre: left to right along the edges, each Loop's body laid out
// inside it first, so the Loop is then placed with its new size.
import dagre from "@dagrejs/dagre";
import {
  CONTAINER_HEADER,
  CONTAINER_MIN,
  CONTAINER_PADDING,
  NODE_HEIGHT,
  NODE_WIDTH,
  type Catalogue,
  type PipelineEdge,
  type PipelineNode,
} from "./graph";

type Size = { width: number; height: number };
type Point = { x: number; y: number };

function layOut(members: PipelineNode[], edges: PipelineEdge[], sizes: Map<string, Size>): Map<string, Point> {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 90 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const node of members) graph.setNode(node.id, { ...sizes.get(node.id)! });
  const ids = new Set(members.map((n) => n.id));
  for (const edge of edges) if (ids.has(edge.source) && ids.has(edge.target)) graph.setEdge(edge.source, edge.target);
  dagre.layout(graph);
  const positions = new Map<string, Point>();
  for (const node of members) {
    const { x, y, width, height } = graph.node(node.id);
    positions.set(node.id, { x: x - width / 2, y: y - height / 2 });
  }
  return positions;
}

/** New positions for every node (children relative to their Loop). The top level keeps
 * its top-left corner where it was, so the view does not jump. */
export function autoLayout(nodes: PipelineNode[], edges: PipelineEdge[], catalogue: Catalogue): Map<string, Point> {
  const groups = new Map<string, PipelineNode[]>();
  for (const node of nodes) {
    const group = node.parentId ?? "";
    groups.set(group, [...(groups.get(group) ?? []), node]);
  }
  const sizes = new Map<string, Size>(
    nodes.map((n) => [n.id, { width: n.measured?.width ?? NODE_WIDTH, height: n.measured?.height ?? NODE_HEIGHT }]),
  );
  const positions = new Map<string, Point>();
  const done = new Set<string>();
  // Innermost containers first: a container's size comes from its laid-out body.
  const layGroup = (parent: string) => {
    const members = groups.get(parent) ?? [];
    for (const member of members) if (groups.has(member.id) && !done.has(member.id)) layGroup(member.id);
    done.add(parent);
    const placed = layOut(members, edges, sizes);
    if (parent === "") {
      const left = Math.min(...members.map((n) => n.position.x));
      const top = Math.min(...members.map((n) => n.position.y));
      const newLeft = Math.min(...[...placed.values()].map((p) => p.x));
      const newTop = Math.min(...[...placed.values()].map((p) => p.y));
      for (const [id, p] of placed) positions.set(id, { x: p.x - newLeft + left, y: p.y - newTop + top });
      return;
    }
    let width = CONTAINER_MIN.width;
    let height = CONTAINER_MIN.height;
    for (const [id, p] of placed) {
      const position = { x: p.x + CONTAINER_PADDING, y: p.y + CONTAINER_HEADER };
      positions.set(id, position);
      width = Math.max(width, position.x + sizes.get(id)!.width + CONTAINER_PADDING);
      height = Math.max(height, position.y + sizes.get(id)!.height + CONTAINER_PADDING);
    }
    if (catalogue.get(nodes.find((n) => n.id === parent)?.data.type ?? "")?.is_container) {
      sizes.set(parent, { width, height });
    }
  };
  if (nodes.length) layGroup("");
  return positions;
}
