// A read-only canvas of one pipeline document (an older version, or a diff with its
// marks): the designer's node cards, nothing to drag, connect or delete. It has its own
// React Flow store, so it never touches the designer's canvas.
import { Background, Controls, MiniMap, ReactFlow, ReactFlowProvider } from "@xyflow/react";
import { useMemo } from "react";
import { FIT_VIEW, MIN_ZOOM, NODE_TYPES } from "../CanvasView";
import { CanvasContext, useCanvas } from "../context";
import { containerSizes, toFlow } from "../graph";
import type { FieldError, PipelineDocument } from "../types";
import type { CanvasMarks } from "./VersionDiff";

const NO_ERRORS = new Map<string, FieldError[]>();
const NO_HANDLES = new Map<string, string[]>();

interface Props {
  document: PipelineDocument;
  marks?: CanvasMarks;
  /** Changes whenever another document is shown, so the view is fitted to it again. */
  viewKey: string;
}

export function VersionCanvas({ document, marks, viewKey }: Props) {
  const designer = useCanvas();
  const { catalogue } = designer;
  const flow = useMemo(() => {
    const { nodes, edges } = toFlow(document, catalogue);
    const sizes = containerSizes(nodes, catalogue); // a Loop is drawn around its body
    return {
      nodes: nodes.map((node) => {
        const mark = marks?.nodes.get(node.id);
        return { ...node, ...sizes.get(node.id), ...(mark ? { className: `diff-${mark}` } : {}) };
      }),
      edges: edges.map((edge) => {
        const handle = edge.sourceHandle ?? "out";
        const mark = marks?.edges.get(edge.id);
        return {
          ...edge,
          label: handle === "out" ? undefined : handle,
          className: mark ? `handle-${handle} diff-${mark}` : `handle-${handle}`,
        };
      }),
    };
  }, [document, marks, catalogue]);
  // A saved version, not the graph being edited: no live run, no errors, nothing to edit,
  // and each node has its type's handles.
  const canvas = useMemo(
    () => ({ ...designer, errorsByNode: NO_ERRORS, live: null, handlesByNode: NO_HANDLES, onNotesChange: null }),
    [designer],
  );
  return (
    <ReactFlowProvider key={viewKey}>
      <CanvasContext.Provider value={canvas}>
        <ReactFlow
          defaultNodes={flow.nodes}
          defaultEdges={flow.edges}
          nodeTypes={NODE_TYPES}
          nodesDraggable={false}
          nodesConnectable={false}
          elementsSelectable={false}
          deleteKeyCode={null}
          minZoom={MIN_ZOOM}
          fitView
          fitViewOptions={FIT_VIEW}
        >
          <Background />
          <Controls showInteractive={false} />
          <MiniMap pannable zoomable nodeClassName={(node) => node.className ?? ""} />
        </ReactFlow>
      </CanvasContext.Provider>
    </ReactFlowProvider>
  );
}
