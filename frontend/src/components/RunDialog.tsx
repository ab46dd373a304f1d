// Execute Now, and Re-run from a node: a form generated from the pipeline's parameter
// definitions; errors the server names (`params.<name>`) are shown next to their field.
import { useEffect, useMemo, useState, type ReactNode } from "react";
import { errorSchemaUnder, parameterDefaults } from "../forms";
import type { FieldError, JsonObject, ParameterDefinition } from "../types";
import { Dialog } from "./Dialog";
import { ErrorList } from "./ErrorList";
import { RunParametersForm } from "./RunParametersForm";

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
  const [values, setValues] = useState<JsonObject>(() => initialValues ?? parameterDefaults(definitions));
  // The server's answer is about the values it was sent: once they are edited, the form's
  // own validation takes over.
  const [edited, setEdited] = useState(false);
  useEffect(() => setEdited(false), [errors]);
  const otherErrors = errors.filter((e) => !e.field.startsWith("params."));
  const serverErrors = useMemo(() => errorSchemaUnder(edited ? [] : errors, "params."), [errors, edited]);
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
      <ErrorList errors={otherErrors} withNode />
      {definitions.length === 0 ? (
        <p>This pipeline has no parameters.</p>
      ) : (
        <RunParametersForm
          id="run"
          definitions={definitions}
          value={values}
          serverErrors={serverErrors}
          onChange={(changed) => {
            setValues(changed);
            setEdited(true);
          }}
        />
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
