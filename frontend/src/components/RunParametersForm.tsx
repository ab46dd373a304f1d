// The values of a run's parameters (Execute Now, Re-run from here, Test node): a form
// generated from the pipeline's parameter definitions. A run's values are values, not
// `{{ }}` references, so nothing is offered for completion.
import type { ErrorSchema } from "@rjsf/utils";
import { useMemo } from "react";
import { EditorContext, useValuesOnlyEditor } from "../context";
import { runParametersSchema } from "../forms";
import type { JsonObject, ParameterDefinition } from "../types";
import { SchemaForm } from "./SchemaForm";

interface Props {
  id: string;
  definitions: ParameterDefinition[];
  value: JsonObject;
  serverErrors: ErrorSchema;
  onChange: (value: JsonObject) => void;
}

export function RunParametersForm({ id, definitions, value, serverErrors, onChange }: Props) {
  const schema = useMemo(() => runParametersSchema(definitions), [definitions]);
  const valuesOnly = useValuesOnlyEditor();
  return (
    <EditorContext.Provider value={valuesOnly}>
      <SchemaForm<JsonObject>
        id={id}
        schema={schema}
        value={value}
        serverErrors={serverErrors}
        onChange={(values) => onChange(values ?? {})}
      />
    </EditorContext.Provider>
  );
}
