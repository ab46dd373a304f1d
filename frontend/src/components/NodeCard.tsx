// The card of one node on the canvas: type, label, key, notes (edited in place), the
// handles its type and config give it (each shown by name), the server's errors, and the
// live run state. A container (Loop) is a box its body's nodes are dropped into.
import { Handle, Position, useUpdateNodeInternals, type NodeProps } from "@xyflow/react";
import { memo, useEffect, useRef, useState } from "react";
import { useCanvas } from "../context";
import { INPUT_HANDLE, type PipelineNode } from "../graph";
import { ErrorList } from "./ErrorList";

function percent(progress: number | null, state: string): number {
  if (state === "succeeded" || state === "cached") return 100;
  return Math.round(100 * Math.min(1, Math.max(0, progress ?? 0)));
}

/** The notes: double-click (or "Add a note" on the selected node) to edit them here;
 * Enter with Ctrl, or leaving the field, keeps them; Escape drops the edit. */
function NodeNotes({ nodeKey, notes, selected }: { nodeKey: string; notes: string; selected: boolean }) {
  const { onNotesChange } = useCanvas();
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(notes);
  useEffect(() => setText(notes), [notes]);
  if (!onNotesChange) return notes ? <div className="dm-node-notes">{notes}</div> : null;
  if (editing) {
    const finish = (keep: boolean) => {
      setEditing(false);
      if (keep && text !== notes) onNotesChange(nodeKey, text);
      else setText(notes);
    };
    return (
      <textarea
        className="dm-node-notes-editor nodrag nowheel"
        aria-label={`Notes of ${nodeKey}`}
        autoFocus
        rows={3}
        value={text}
        onChange={(event) => setText(event.target.value)}
        onBlur={() => finish(true)}
        onKeyDown={(event) => {
          event.stopPropagation(); // Delete and Ctrl+Z edit the text, not the canvas
          if (event.key === "Escape") finish(false);
          if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) finish(true);
        }}
      />
    );
  }
  if (notes) {
    return (
      <div className="dm-node-notes" title="Double-click to edit" onDoubleClick={() => setEditing(true)}>
        {notes}
      </div>
    );
  }
  return selected ? (
    <button type="button" className="link dm-node-add-note nodrag" onClick={() => setEditing(true)}>
      Add a note
    </button>
  ) : null;
}

function NodeCardImpl({ id, data, selected }: NodeProps<PipelineNode>) {
  const { catalogue, errorsByNode, live, handlesByNode } = useCanvas();
  const nodeType = catalogue.get(data.type);
  const errors = errorsByNode.get(id) ?? [];
  const nodeRun = live?.nodes.get(id);
  const typeLabel = nodeType?.label ?? `unknown type ${data.type}`;
  const container = nodeType?.is_container ?? false;
  const handles = handlesByNode.get(id) ?? nodeType?.handles ?? ["out"];
  // React Flow measures handles once; a Parallel that gains a branch needs measuring again.
  const updateNodeInternals = useUpdateNodeInternals();
  const handleNames = handles.join(" ");
  const measuredHandles = useRef(handleNames);
  useEffect(() => {
    if (measuredHandles.current === handleNames) return;
    measuredHandles.current = handleNames;
    updateNodeInternals(id);
  }, [handleNames]);
  const classes = [
    "dm-node",
    `category-${nodeType?.category ?? "unknown"}`,
    container ? "is-container" : "",
    selected ? "is-selected" : "",
    errors.length ? "has-errors" : "",
    nodeRun ? `run-${nodeRun.state}` : "",
  ];
  return (
    <div className={classes.filter(Boolean).join(" ")} data-state={nodeRun?.state ?? ""} data-errors={errors.length}>
      {nodeType?.accepts_input !== false && (
        <Handle type="target" position={Position.Left} id={INPUT_HANDLE} className="dm-handle-in" />
      )}
      <div className="dm-node-head">
        <span className="dm-node-type">{typeLabel}</span>
        {nodeRun && <span className={`badge state-${nodeRun.state}`}>{nodeRun.state}</span>}
      </div>
      <div className="dm-node-title">{data.label || typeLabel}</div>
      <div className="dm-node-key">{id}</div>
      <NodeNotes nodeKey={id} notes={data.notes} selected={selected} />
      <ErrorList errors={errors} className="dm-node-errors" />
      {nodeRun && (
        <div className="dm-node-run">
          <div className="bar" title={`${percent(nodeRun.progress, nodeRun.state)}%`}>
            <span style={{ width: `${percent(nodeRun.progress, nodeRun.state)}%` }} />
          </div>
          <div className="dm-node-records">
            {nodeRun.records_in ?? "–"} in · {nodeRun.records_out ?? "–"} out
          </div>
          {nodeRun.error && <div className="node-error">{nodeRun.error.slice(0, 300)}</div>}
        </div>
      )}
      <div className="dm-node-handles">
        {handles.map((handle) => (
          <div key={handle} className={`dm-handle-row handle-${handle}`}>
            <span className="dm-handle-name">{handle}</span>
            <Handle
              type="source"
              position={Position.Right}
              id={handle}
              className={`dm-handle-out dm-handle-${handle}`}
            />
          </div>
        ))}
      </div>
      {container && <div className="dm-container-hint">Drop nodes here: they run once per iteration.</div>}
    </div>
  );
}

export const NodeCard = memo(NodeCardImpl);
