// react-jsonschema-form as the designer uses it: no submit button, inline validation as
// you type, server errors next to their fields, whole `{{ templates }}` left to the run.
import Form from "@rjsf/core";
import type { ErrorSchema, RJSFSchema, UiSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { useMemo } from "react";
import { skipTemplateErrors, formSchema } from "../forms";

const NO_SUBMIT: UiSchema = { "ui:submitButtonOptions": { norender: true } };

interface Props<T> {
  id: string;
  schema: RJSFSchema;
  value: T;
  onChange: (value: T) => void;
  serverErrors?: ErrorSchema;
  uiSchema?: UiSchema;
}

export function SchemaForm<T>({ id, schema, value, onChange, serverErrors, uiSchema }: Props<T>) {
  const titled = useMemo(() => formSchema(schema), [schema]);
  return (
    <Form<T>
      className="dm-form"
      idPrefix={id}
      schema={titled}
      uiSchema={{ ...NO_SUBMIT, ...uiSchema }}
      formData={value}
      validator={validator}
      liveValidate="onChange"
      showErrorList={false}
      noHtml5Validate
      extraErrors={serverErrors}
      transformErrors={skipTemplateErrors(value)}
      // Defaults come from the catalogue when a node is created; filling them in again
      // here would turn merely opening a node into an unsaved change.
      experimental_defaultFormStateBehavior={{ emptyObjectFields: "skipDefaults" }}
      useFallbackUiForUnsupportedType
      onChange={(event) => onChange(event.formData as T)}
    />
  );
}
