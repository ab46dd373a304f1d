// Execute Now, and Re-run from a node: a form generated from the pipeline's parameter
// definitions; errors the server names (`params.<name>`) are shown next to their field.
import { useEffect, useMemo, useState, type ReactNode } from "react";
import { EditorContext, useValuesOnlyEditor } from "../context";
import { errorSchema, pathParts, readableField, runParametersSchema } from "../forms";
import type { FieldError, JsonObject, ParameterDefinition } from "../types";
import { Dialog } from "./Dialog";
import { SchemaForm } from "./SchemaForm";

interface Props {
  definitions: ParameterDefinition[];
  version: number;
  unsaved: boolean;
  busy: boolean;
  errors: FieldError[];
  onStart: (params: JsonObject) => void;
  onClose: () => void;
  /** A re-run: its title, what it does, and the values of the run it repeats. */
  title?: string;
  intro?: ReactNode;
  initialValues?: JsonObject;
  submitLabel?: string;
}

export function RunDialog({
  definitions,
  version,
  unsaved,
  busy,
  errors,
  onStart,
  onClose,
  title = "Execute now",
  intro,
  initialValues,
  submitLabel = "Run",
}: Props) {
  const schema = useMemo(() => runParametersSchema(definitions), [definitions]);
  const valuesOnly = useValuesOnlyEditor(); // a run's values are values, not `{{ }}` references
  const [values, setValues] = useState<JsonObject>(
    () =>
      initialValues ?? Object.fromEntries(definitions.filter((d) => d.default != null).map((d) => [d.name, d.default])),
  );
  // The server's answer is about the values it was sent: once they are edited, the form's
  // own validation takes over.
  const [edited, setEdited] = useState(false);
  useEffect(() => setEdited(false), [errors]);
  const paramErrors = edited ? [] : errors.filter((e) => e.field.startsWith("params."));
  const otherErrors = errors.filter((e) => !e.field.startsWith("params."));
  const serverErrors = useMemo(
    () => errorSchema(paramErrors.map((e): [string[], string] => [pathParts(e.field).slice(1), e.message])),
    [errors, edited],
  );
  return (
    <Dialog title={title} onClose={onClose}>
      <p className="muted">
        {intro ?? (
          <>
            Runs the saved version <strong>v{version}</strong>.
          </>
        )}
      </p>
      {unsaved && (
        <p className="dm-warning">You have unsaved changes: they are not part of this run. Save first to run them.</p>
      )}
      {otherErrors.length > 0 && (
        <ul className="dm-error-list" role="alert">
          {otherErrors.map((error, index) => (
            <li key={index}>
              {error.node && <code>{error.node}</code>} {error.field && <strong>{readableField(error.field)}</strong>}{" "}
              {error.message}
            </li>
          ))}
        </ul>
      )}
      {definitions.length === 0 ? (
        <p>This pipeline has no parameters.</p>
      ) : (
        <EditorContext.Provider value={valuesOnly}>
          <SchemaForm<JsonObject>
            id="run"
            schema={schema}
            value={values}
            serverErrors={serverErrors}
            onChange={(v) => {
              setValues(v ?? {});
              setEdited(true);
            }}
          />
        </EditorContext.Provider>
      )}
      <div className="dm-dialog-actions">
        <button type="button" onClick={onClose}>
          Cancel
        </button>
        <button type="button" className="primary" id="start-run" disabled={busy} onClick={() => onStart(values)}>
          {busy ? "Starting…" : submitLabel}
        </button>
      </div>
    </Dialog>
  );
}
