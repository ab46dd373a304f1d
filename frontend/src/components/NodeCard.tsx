// The card of one node on the canvas: type, label, key, notes, the handles the catalogue
// gives its type (each shown by name), the server's errors, and the live run state.
import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { useCanvas } from "../context";
import { readableField } from "../forms";
import { INPUT_HANDLE, type PipelineNode } from "../graph";

function percent(progress: number | null, state: string): number {
  if (state === "succeeded" || state === "cached") return 100;
  return Math.round(100 * Math.min(1, Math.max(0, progress ?? 0)));
}

function NodeCardImpl({ id, data, selected }: NodeProps<PipelineNode>) {
  const { catalogue, errorsByNode, live } = useCanvas();
  const nodeType = catalogue.get(data.type);
  const errors = errorsByNode.get(id) ?? [];
  const nodeRun = live?.nodes.get(id);
  const typeLabel = nodeType?.label ?? `unknown type ${data.type}`;
  const classes = [
    "dm-node",
    `category-${nodeType?.category ?? "unknown"}`,
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
      {data.notes && <div className="dm-node-notes">{data.notes}</div>}
      {errors.length > 0 && (
        <ul className="dm-node-errors" role="alert">
          {errors.map((error, index) => (
            <li key={index}>
              {error.field && <strong>{readableField(error.field)}</strong>} {error.message}
            </li>
          ))}
        </ul>
      )}
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
        {(nodeType?.handles ?? ["out"]).map((handle) => (
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
    </div>
  );
}

export const NodeCard = memo(NodeCardImpl);
