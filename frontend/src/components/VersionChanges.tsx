// The changes between two versions, listed: the pipeline's own fields, nodes added,
// removed and changed (config changes field by field), and edges.
import { useCanvas } from "../context";
import type { FieldChange, VersionDiff } from "../panelTypes";
import type { DocumentEdge, DocumentNode } from "../types";
import { changeCount, changeLabel, shownValue } from "./VersionDiff";

function Change({ change }: { change: FieldChange }) {
  return (
    <li className={`dm-change change-${change.change}`}>
      <code>{changeLabel(change)}</code>{" "}
      {changeLabel(change) === "position" ? (
        "moved"
      ) : change.change === "added" ? (
        <>
          added <span className="dm-new">{shownValue(change.new)}</span>
        </>
      ) : change.change === "removed" ? (
        <>
          removed <span className="dm-old">{shownValue(change.old)}</span>
        </>
      ) : (
        <>
          <span className="dm-old">{shownValue(change.old)}</span> →{" "}
          <span className="dm-new">{shownValue(change.new)}</span>
        </>
      )}
    </li>
  );
}

function edgeText(edge: DocumentEdge): string {
  const handle = edge.source_handle ?? "out";
  return `${edge.source}${handle === "out" ? "" : `.${handle}`} → ${edge.target}`;
}

/** Nodes added or removed: each key with its type. */
function NodeList({ title, className, nodes }: { title: string; className: string; nodes: DocumentNode[] }) {
  const { catalogue } = useCanvas();
  if (nodes.length === 0) return null;
  return (
    <section className={className}>
      <h4>{title}</h4>
      <ul>
        {nodes.map((node) => (
          <li key={node.key} data-node={node.key}>
            <code>{node.key}</code> <span className="muted">{catalogue.get(node.type)?.label ?? node.type}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function VersionChanges({ diff }: { diff: VersionDiff }) {
  // Moving a node changes both coordinates: one "position" line is enough.
  const withoutRepeats = (changes: FieldChange[]) =>
    changes.filter(
      (change, index) =>
        changeLabel(change) !== "position" || changes.findIndex((c) => changeLabel(c) === "position") === index,
    );
  if (changeCount(diff) === 0) {
    return (
      <p className="dm-no-changes">
        No differences: v{diff.from_version} and v{diff.to_version} have the same content.
      </p>
    );
  }
  return (
    <div className="dm-changes" aria-label="Changes">
      {diff.pipeline.length > 0 && (
        <section>
          <h4>Pipeline</h4>
          <ul>
            {diff.pipeline.map((change, index) => (
              <Change key={index} change={change} />
            ))}
          </ul>
        </section>
      )}
      <NodeList title="Added nodes" className="dm-changes-added" nodes={diff.nodes.added} />
      <NodeList title="Removed nodes" className="dm-changes-removed" nodes={diff.nodes.removed} />
      {diff.nodes.changed.length > 0 && (
        <section className="dm-changes-changed">
          <h4>Changed nodes</h4>
          {diff.nodes.changed.map((node) => (
            <div key={node.key} className="dm-changed-node" data-node={node.key}>
              <code className="dm-changed-key">{node.key}</code>
              <ul>
                {withoutRepeats(node.changes).map((change, index) => (
                  <Change key={index} change={change} />
                ))}
              </ul>
            </div>
          ))}
        </section>
      )}
      {diff.edges.added.length + diff.edges.removed.length > 0 && (
        <section>
          <h4>Edges</h4>
          <ul>
            {diff.edges.added.map((edge) => (
              <li key={`+${edgeText(edge)}`} className="change-added">
                added {edgeText(edge)}
              </li>
            ))}
            {diff.edges.removed.map((edge) => (
              <li key={`-${edgeText(edge)}`} className="change-removed">
                removed {edgeText(edge)}
              </li>
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}
