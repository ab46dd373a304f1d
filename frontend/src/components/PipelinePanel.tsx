// The side panel when no node is selected: the pipeline's name, description and parameter
// definitions (the form comes from the document's JSON Schema, served by the page).
import type { RJSFSchema } from "@rjsf/utils";
import { memo, useMemo } from "react";
import { errorSchemaUnder } from "../forms";
import type { ParameterRow, PipelineMeta } from "../graph";
import type { FieldError } from "../types";
import { ErrorList } from "./ErrorList";
import { SchemaForm } from "./SchemaForm";

interface Props {
  meta: PipelineMeta;
  schema: RJSFSchema;
  errors: FieldError[];
  onChange: (patch: Partial<PipelineMeta>) => void;
}

export const PipelinePanel = memo(function PipelinePanel({ meta, schema, errors, onChange }: Props) {
  const parameterErrors = useMemo(() => errorSchemaUnder(errors, "parameters"), [errors]);
  const otherErrors = errors.filter((e) => !e.field.startsWith("parameters"));
  return (
    <div className="dm-panel-body">
      <h2>Pipeline</h2>
      <p className="muted small">Select a node to configure it. Here: the pipeline itself.</p>
      <ErrorList errors={otherErrors} />
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
