// react-jsonschema-form as the designer uses it: no submit button, inline validation as
// you type, server errors next to their fields, whole `{{ templates }}` left to the run,
// `{{ }}` references completed as you type, and the pickers the catalogue's hints ask for.
import Form from "@rjsf/core";
import type { ErrorSchema, RegistryFieldsType, RegistryWidgetsType, RJSFSchema, UiSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { useMemo } from "react";
import { formSchema, hintUiSchema, skipTemplateErrors } from "../forms";
import { DatasetWidget, TemplateTextareaWidget, TemplateTextWidget } from "./EditWidgets";
import { OperatorChainField } from "./OperatorChainField";

const NO_SUBMIT: UiSchema = { "ui:submitButtonOptions": { norender: true } };
const WIDGETS: RegistryWidgetsType = {
  TextWidget: TemplateTextWidget,
  TextareaWidget: TemplateTextareaWidget,
  dataset: DatasetWidget,
};
const FIELDS: RegistryFieldsType = { operatorChain: OperatorChainField };

interface Props<T> {
  id: string;
  schema: RJSFSchema;
  value: T;
  onChange: (value: T) => void;
  serverErrors?: ErrorSchema;
  uiSchema?: UiSchema;
  /** Inside another form (an operator's config in the chain): a <div>, as forms do not nest. */
  nested?: boolean;
}

export function SchemaForm<T>({ id, schema, value, onChange, serverErrors, uiSchema, nested }: Props<T>) {
  const titled = useMemo(() => formSchema(schema), [schema]);
  const hints = useMemo(() => hintUiSchema(titled), [titled]);
  const ui = useMemo(() => ({ ...NO_SUBMIT, ...hints, ...uiSchema }), [hints, uiSchema]);
  return (
    <Form<T>
      className="dm-form"
      tagName={nested ? "div" : undefined}
      idPrefix={id}
      schema={titled}
      uiSchema={ui}
      formData={value}
      validator={validator}
      widgets={WIDGETS}
      fields={FIELDS}
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
