// The side panel when no node is selected: the pipeline's name, description and parameter
// definitions (the form comes from the document's JSON Schema, served by the page).
import type { RJSFSchema } from "@rjsf/utils";
import { memo, useMemo } from "react";
import { errorSchema, pathParts, readableField } from "../forms";
import type { ParameterRow, PipelineMeta } from "../graph";
import type { FieldError } from "../types";
import { SchemaForm } from "./SchemaForm";

interface Props {
  meta: PipelineMeta;
  schema: RJSFSchema;
  errors: FieldError[];
  onChange: (patch: Partial<PipelineMeta>) => void;
}

export const PipelinePanel = memo(function PipelinePanel({ meta, schema, errors, onChange }: Props) {
  const parameterErrors = useMemo(
    () =>
      errorSchema(
        errors
          .filter((e) => e.field.startsWith("parameters"))
          .map((e): [string[], string] => [pathParts(e.field).slice(1), e.message]),
      ),
    [errors],
  );
  const otherErrors = errors.filter((e) => !e.field.startsWith("parameters"));
  return (
    <div className="dm-panel-body">
      <h2>Pipeline</h2>
      <p className="muted small">Select a node to configure it. Here: the pipeline itself.</p>
      {otherErrors.length > 0 && (
        <ul className="dm-error-list" role="alert">
          {otherErrors.map((error, index) => (
            <li key={index}>
              {error.field && <strong>{readableField(error.field)}</strong>} {error.message}
            </li>
          ))}
        </ul>
      )}
      <label className="dm-field">
        <span>Name</span>
        <input id="pipeline-name" value={meta.name} onChange={(e) => onChange({ name: e.target.value })} />
      </label>
      <label className="dm-field">
        <span>Description</span>
        <textarea
          id="pipeline-description"
          rows={2}
          value={meta.description}
          onChange={(e) => onChange({ description: e.target.value })}
        />
      </label>
      <section className="dm-parameters" aria-label="Parameters">
        <h3>Parameters</h3>
        <p className="muted small">
          Values a run is given; refer to one in a config as <code>{"{{ params.name }}"}</code>.
        </p>
        <SchemaForm<ParameterRow[]>
          id="params"
          schema={schema}
          value={meta.parameters}
          serverErrors={parameterErrors}
          onChange={(parameters) => onChange({ parameters: parameters ?? [] })}
        />
      </section>
    </div>
  );
});
