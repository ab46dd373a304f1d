// The operator chain of Data Cleaning (an array whose steps name an operator of
// /api/operators/): add, remove and reorder steps; pick each step's operator from the
// catalogue; edit its config in a form generated from that operator's JSON Schema.
import type { ErrorSchema, FieldProps } from "@rjsf/utils";
import { useEffect, useMemo, useState } from "react";
import { useEditor } from "../context";
import { nameSuggestions, type Suggestion } from "../EditSuggestions";
import type { JsonObject, Operator } from "../types";
import { SuggestInput } from "./EditSuggestInput";
import { SchemaForm } from "./SchemaForm";

interface Step extends JsonObject {
  name?: string;
  config?: JsonObject;
}

function messages(errors: ErrorSchema | undefined): string[] {
  return ((errors as { __errors?: string[] } | undefined)?.__errors ?? []).map(String);
}

export function OperatorChainField({ formData, onChange, fieldPathId, errorSchema, disabled, readonly }: FieldProps) {
  const editor = useEditor();
  const [operators, setOperators] = useState<Operator[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    editor
      ?.operators()
      .then(setOperators)
      .catch((error: unknown) => setProblem(`The operator catalogue could not be loaded: ${String(error)}`));
  }, [editor]);

  const byName = useMemo(() => new Map(operators.map((o) => [o.name, o])), [operators]);
  const entries = useMemo(
    (): Suggestion[] => operators.map((o) => ({ label: o.label || o.name, insert: o.name, detail: o.kind })),
    [operators],
  );
  const steps: Step[] = Array.isArray(formData) ? (formData as Step[]) : [];
  const id = fieldPathId.$id;
  const change = (next: Step[]) => onChange(next, fieldPathId.path);
  const update = (index: number, patch: Partial<Step>) =>
    change(steps.map((step, i) => (i === index ? { ...step, ...patch } : step)));
  const move = (index: number, to: number) => {
    const next = [...steps];
    next.splice(to, 0, ...next.splice(index, 1));
    change(next);
  };
  const locked = disabled || readonly;

  return (
    <div className="dm-operator-chain">
      {problem && <p className="dm-error-text">{problem}</p>}
      {steps.length === 0 && <p className="muted small">No operators yet: records pass unchanged.</p>}
      <ol>
        {steps.map((step, index) => {
          const operator = byName.get(step.name ?? "");
          const stepErrors = (errorSchema as Record<number, ErrorSchema> | undefined)?.[index] as
            (ErrorSchema & { name?: ErrorSchema; config?: ErrorSchema }) | undefined;
          const problems = [...messages(stepErrors), ...messages(stepErrors?.name)];
          return (
            <li key={index} className="dm-operator-step" data-operator={step.name ?? ""}>
              <div className="dm-operator-head">
                <span className="dm-operator-index">{index + 1}</span>
                <SuggestInput
                  id={`${id}_${index}_name`}
                  className="form-control"
                  aria-label={`Operator ${index + 1}`}
                  placeholder="Pick an operator"
                  disabled={locked}
                  value={step.name ?? ""}
                  onChange={(name) => update(index, { name })}
                  suggest={(before, after) => nameSuggestions(before + after, entries)}
                  onTake={(taken) => {
                    const picked = byName.get(taken.insert);
                    if (picked && taken.insert !== step.name) {
                      update(index, { name: taken.insert, config: structuredClone(picked.default_config) });
                    }
                  }}
                />
                {operator && <span className={`dm-kind kind-${operator.kind}`}>{operator.kind}</span>}
                <button
                  type="button"
                  className="link"
                  aria-label={`Move operator ${index + 1} up`}
                  disabled={locked || index === 0}
                  onClick={() => move(index, index - 1)}
                >
                  ↑
                </button>
                <button
                  type="button"
                  className="link"
                  aria-label={`Move operator ${index + 1} down`}
                  disabled={locked || index === steps.length - 1}
                  onClick={() => move(index, index + 1)}
                >
                  ↓
                </button>
                <button
                  type="button"
                  className="link"
                  aria-label={`Remove operator ${index + 1}`}
                  disabled={locked}
                  onClick={() => change(steps.filter((_, i) => i !== index))}
                >
                  ✕
                </button>
              </div>
              {operator?.description && <p className="muted small">{operator.description}</p>}
              {step.name && operators.length > 0 && !operator && (
                <p className="dm-error-text">{step.name} is not in the operator catalogue.</p>
              )}
              {problems.length > 0 && (
                <ul className="error-detail">
                  {problems.map((message, i) => (
                    <li key={i} className="text-danger">
                      {message}
                    </li>
                  ))}
                </ul>
              )}
              {operator && (
                <SchemaForm<JsonObject>
                  key={operator.name} // another operator: another form
                  nested
                  id={`${id}_${index}_config`}
                  schema={operator.config_schema}
                  value={step.config ?? {}}
                  serverErrors={stepErrors?.config}
                  onChange={(config) => update(index, { config: config ?? {} })}
                />
              )}
            </li>
          );
        })}
      </ol>
      <button
        type="button"
        className="dm-operator-add"
        id={`${id}__add`}
        disabled={locked}
        onClick={() => {
          change([...steps, { name: "", config: {} }]);
          // The new step's picker opens on focus: the catalogue is one click away.
          requestAnimationFrame(() => document.getElementById(`${id}_${steps.length}_name`)?.focus());
        }}
      >
        Add operator
      </button>
    </div>
  );
}
