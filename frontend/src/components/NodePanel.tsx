// The side panel of the selected node: key, label, notes, its config form generated from
// the type's JSON Schema, execution settings, the server's errors, Test node, and while a
// run is shown, the node's state, records, output, log lines and Re-run from here.
import type { RJSFSchema } from "@rjsf/utils";
import { memo, useEffect, useMemo, useState } from "react";
import { EditorContext, useEditor } from "../context";
import { errorSchema, expressionUiSchema, nodeFieldPath } from "../forms";
import { KEY_PATTERN, type PipelineNodeData } from "../graph";
import { isFinished, type LiveView } from "../live";
import type { FieldError, JsonObject, NodeType, ParameterDefinition } from "../types";
import { ErrorList } from "./ErrorList";
import { LogPanel } from "./LogPanel";
import { NodeOutput } from "./NodeOutput";
import { SchemaForm } from "./SchemaForm";
import { TestNodePanel } from "./TestNodePanel";

interface Props {
  nodeKey: string;
  data: PipelineNodeData;
  nodeType: NodeType | undefined;
  settingsSchema: RJSFSchema;
  errors: FieldError[];
  live: LiveView | null;
  /** The saved pipeline's parameters (a test resolves `{{ params.x }}` with them). */
  definitions: ParameterDefinition[];
  /** Re-run the shown run from this node (once it has finished). */
  onRerun: (key: string) => void;
  /** Renames the node; returns why the key was refused, or null. */
  onRename: (key: string, newKey: string) => string | null;
  onChange: (key: string, patch: Partial<PipelineNodeData>) => void;
}

function KeyField({ nodeKey, onRename }: { nodeKey: string; onRename: (newKey: string) => string | null }) {
  const [text, setText] = useState(nodeKey);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    setText(nodeKey);
    setProblem(null);
  }, [nodeKey]);
  const commit = () => {
    if (text === nodeKey) return;
    setProblem(
      KEY_PATTERN.test(text) ? onRename(text) : "must start with a letter or _ and contain only letters, digits and _",
    );
  };
  return (
    <label className="dm-field">
      <span>Key</span>
      <input
        id="node-key"
        value={text}
        spellCheck={false}
        onChange={(event) => setText(event.target.value)}
        onBlur={commit}
        onKeyDown={(event) => event.key === "Enter" && commit()}
        aria-invalid={problem !== null}
      />
      <small className={problem ? "dm-error-text" : "muted"}>
        {problem ?? "Used in expressions, e.g. {{ nodes." + nodeKey + ".output.count }}"}
      </small>
    </label>
  );
}

export const NodePanel = memo(function NodePanel({
  nodeKey,
  data,
  nodeType,
  settingsSchema,
  errors,
  live,
  definitions,
  onRerun,
  onRename,
  onChange,
}: Props) {
  const change = (patch: Partial<PipelineNodeData>) => onChange(nodeKey, patch);
  const pairs = (section: "config" | "settings") =>
    errors.flatMap((e): [string[], string][] => {
      const path = nodeFieldPath(e.field, section);
      return path === null ? [] : [[path, e.message]];
    });
  const configErrors = useMemo(() => errorSchema(pairs("config")), [errors]);
  const settingsErrors = useMemo(() => errorSchema(pairs("settings")), [errors]);
  const otherErrors = errors.filter(
    (e) => nodeFieldPath(e.field, "config") === null && nodeFieldPath(e.field, "settings") === null,
  );
  const nodeRun = live?.nodes.get(nodeKey);
  const configUi = useMemo(() => expressionUiSchema(nodeType?.expression_fields ?? []), [nodeType]);
  // A node's config refers to other nodes' outputs, not to its own.
  const editor = useEditor();
  const otherNodes = useMemo(
    () => editor && { ...editor, nodeKeys: editor.nodeKeys.filter((key) => key !== nodeKey) },
    [editor, nodeKey],
  );

  return (
    <div className="dm-panel-body" data-node={nodeKey}>
      <h2>{nodeType?.label ?? data.type}</h2>
      {nodeType ? (
        <p className="muted small">{nodeType.description}</p>
      ) : (
        <p className="dm-error-text">This node type is not in the catalogue: the server will refuse it.</p>
      )}
      <ErrorList errors={otherErrors} />
      {nodeRun && (
        <section className="dm-run-facts" aria-label="This node in the run">
          <span className={`badge state-${nodeRun.state}`}>{nodeRun.state}</span>
          <span>
            {nodeRun.records_in ?? "–"} records in, {nodeRun.records_out ?? "–"} out
          </span>
          {nodeRun.attempt > 1 && <span>attempt {nodeRun.attempt}</span>}
          {nodeRun.error && <div className="error-box">{nodeRun.error}</div>}
          {isFinished(live?.run?.state) && (
            <button type="button" id="rerun-from-node" onClick={() => onRerun(nodeKey)}>
              Re-run from here
            </button>
          )}
        </section>
      )}
      {nodeRun?.output != null && (
        <section className="dm-node-output" aria-label="Output in the run">
          <h3>Output</h3>
          <NodeOutput output={nodeRun.output} />
        </section>
      )}
      {live && <LogPanel logs={live.logs} nodeKey={nodeKey} />}
      <KeyField nodeKey={nodeKey} onRename={(newKey) => onRename(nodeKey, newKey)} />
      <label className="dm-field">
        <span>Label</span>
        <input
          id="node-label"
          value={data.label}
          placeholder={nodeType?.label}
          onChange={(e) => change({ label: e.target.value })}
        />
      </label>
      <label className="dm-field">
        <span>Notes</span>
        <textarea
          id="node-notes"
          rows={2}
          value={data.notes}
          placeholder="Shown on the canvas"
          onChange={(e) => change({ notes: e.target.value })}
        />
      </label>
      {nodeType && (
        <section className="dm-config" aria-label="Configuration">
          <h3>Configuration</h3>
          <EditorContext.Provider value={otherNodes}>
            <SchemaForm<JsonObject>
              key={`config-${nodeKey}`}
              id="config"
              schema={nodeType.config_schema}
              value={data.config}
              serverErrors={configErrors}
              uiSchema={configUi}
              onChange={(config) => change({ config })}
            />
          </EditorContext.Provider>
        </section>
      )}
      <TestNodePanel nodeKey={nodeKey} config={data.config} definitions={definitions} />
      <details className="dm-settings">
        <summary>Execution settings</summary>
        <SchemaForm<JsonObject>
          key={`settings-${nodeKey}`}
          id="settings"
          schema={settingsSchema}
          value={data.settings}
          serverErrors={settingsErrors}
          onChange={(settings) => change({ settings })}
        />
      </details>
    </div>
  );
});
