// JSON Schema and error plumbing between the API and react-jsonschema-form: readable
// names for anyOf options, server errors as rjsf error schemas, and the run form's schema
// built from the pipeline's parameter definitions.
import type { ErrorSchema, RJSFSchema, RJSFValidationError, UiSchema } from "@rjsf/utils";
import type { FieldError, JsonObject, ParameterDefinition } from "./types";

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionTitle(option: RJSFSchema): string {
  if (option.const !== undefined) return String(option.const);
  if (Array.isArray(option.enum)) return option.enum.map(String).join(" / ");
  if (typeof option.type === "string") return option.type === "integer" ? "number" : option.type;
  return "value";
}

/** The schema as the form should show it, meaning unchanged:
 * - a title on every anyOf/oneOf option that lacks one, so the option picker reads
 *   "auto / number" instead of "Option 1 / Option 2"; constant options are read-only;
 * - an object without declared properties allows any (as JSON Schema says), and says so
 *   explicitly, so the form shows its keys and values instead of nothing. */
export function formSchema(schema: RJSFSchema): RJSFSchema {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (!isObject(node)) return node;
    const copy: JsonObject = {};
    if (node.type === "object" && node.properties === undefined && node.additionalProperties === undefined) {
      copy.additionalProperties = true;
    }
    for (const [name, value] of Object.entries(node)) {
      if ((name === "anyOf" || name === "oneOf") && Array.isArray(value)) {
        copy[name] = value.map((option) => {
          if (!isObject(option)) return option;
          const titled = { ...(walk(option) as JsonObject), title: option.title ?? optionTitle(option as RJSFSchema) };
          // A constant option has nothing to edit once picked (designer.css hides its field).
          return option.const !== undefined ? { ...titled, readOnly: true } : titled;
        });
      } else if (name === "default" || name === "const" || name === "enum" || name === "examples") {
        copy[name] = value; // values, not schemas
      } else {
        copy[name] = walk(value);
      }
    }
    return copy;
  };
  return walk(schema) as RJSFSchema;
}

/** The widgets the catalogue's hints ask for: a dataset picker where a string says
 * `"x-catalogue": "datasets"`, the operator chain editor for an array whose steps name
 * `"x-catalogue": "operators"`. */
export function hintUiSchema(schema: RJSFSchema): UiSchema {
  const ui: JsonObject = {};
  if (schema["x-catalogue"] === "datasets") ui["ui:widget"] = "dataset";
  const items = isObject(schema.items) ? (schema.items as RJSFSchema) : null;
  const stepName = items?.properties?.name;
  if (items && isObject(stepName) && stepName["x-catalogue"] === "operators") {
    ui["ui:field"] = "operatorChain";
  } else if (items) {
    const inner = hintUiSchema(items);
    if (Object.keys(inner).length) ui.items = inner;
  }
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    if (!isObject(property)) continue;
    const inner = hintUiSchema(property as RJSFSchema);
    if (Object.keys(inner).length) ui[name] = inner;
  }
  return ui as UiSchema;
}

/** Expression fields (a Condition's `expression`) complete bare references, without `{{ }}`. */
export function expressionUiSchema(fields: string[]): UiSchema {
  return Object.fromEntries(fields.map((name) => [name, { "ui:options": { expression: true } }]));
}

/** `operators[0].name` -> ["operators", "0", "name"]. */
export function pathParts(path: string): string[] {
  return path
    .replace(/\[(\d+)\]/g, ".$1")
    .split(".")
    .filter((part) => part !== "");
}

/** rjsf's error schema ({field: {__errors: [...]}}) from (path, message) pairs. */
export function errorSchema(pairs: [string[], string][]): ErrorSchema {
  const root: JsonObject = {};
  for (const [parts, message] of pairs) {
    let node = root;
    for (const part of parts) {
      node[part] = isObject(node[part]) ? node[part] : {};
      node = node[part] as JsonObject;
    }
    node.__errors = [...((node.__errors as string[] | undefined) ?? []), message];
  }
  return root as ErrorSchema;
}

/** The server's errors about one part of what was sent (`params.`, `parameters`), as the
 * error schema of the form that edits that part: `params.limit` is the field `limit`. */
export function errorSchemaUnder(errors: FieldError[], prefix: string): ErrorSchema {
  return errorSchema(
    errors
      .filter((e) => e.field.startsWith(prefix))
      .map((e): [string[], string] => [pathParts(e.field).slice(1), e.message]),
  );
}

/** A server error about a node's `config` (or `settings`), as the path inside it; null
 * when the error is about something else of the node (its key, its edges…). */
export function nodeFieldPath(field: string, section: "config" | "settings"): string[] | null {
  const prefix = new RegExp(`^nodes\\[\\d+\\]\\.${section}(?=\\.|\\[|$)`);
  if (!prefix.test(field)) return null;
  return pathParts(field.replace(prefix, ""));
}

/** Where an error is, in words a person reads: `config.dataset`, not `nodes[0].config.dataset`. */
export function readableField(field: string): string {
  return field.replace(/^nodes\[\d+\]\./, "");
}

const WHOLE_TEMPLATE = /^\s*\{\{.*\}\}\s*$/s;

function valueAt(data: unknown, parts: string[]): unknown {
  let value = data;
  for (const part of parts) {
    if (!isObject(value) && !Array.isArray(value)) return undefined;
    value = (value as JsonObject)[part];
  }
  return value;
}

/** Drops client-side errors about a value that is a whole `{{ template }}`: like the
 * server, the form checks such a value when the run renders it, not while it is edited. */
export function skipTemplateErrors(formData: unknown) {
  return (errors: RJSFValidationError[]) =>
    errors.filter((error) => {
      const value = valueAt(formData, pathParts(error.property ?? ""));
      return !(typeof value === "string" && WHOLE_TEMPLATE.test(value));
    });
}

/** The run form: one field per parameter definition, typed, with its default. */
export function runParametersSchema(definitions: ParameterDefinition[]): RJSFSchema {
  const properties: Record<string, RJSFSchema> = {};
  const required: string[] = [];
  for (const definition of definitions) {
    const field: RJSFSchema = { title: definition.name };
    if (definition.description) field.description = definition.description;
    if (definition.type === "enum") field.enum = (definition.choices ?? []) as RJSFSchema["enum"];
    else if (definition.type === "integer" || definition.type === "number" || definition.type === "boolean") {
      field.type = definition.type;
    } else {
      field.type = "string";
      if (definition.type === "datetime") field.format = "date-time";
      if (definition.type === "dataset") field["x-catalogue"] = "datasets";
    }
    if (definition.default !== undefined && definition.default !== null) {
      field.default = definition.default as RJSFSchema["default"];
    } else if (definition.required) {
      required.push(definition.name);
    }
    properties[definition.name] = field;
  }
  return { type: "object", properties, required };
}

/** A run's values before anything is typed: each parameter's default, where it has one. */
export function parameterDefaults(definitions: ParameterDefinition[]): JsonObject {
  return Object.fromEntries(definitions.filter((d) => d.default != null).map((d) => [d.name, d.default]));
}

/** The parameters form's schema: the document's own, with `default` and `choices` edited
 * as text (the document allows any JSON there; they are typed again on save). */
export function parameterRowsSchema(documentSchema: RJSFSchema): RJSFSchema {
  const items = isObject(documentSchema.items) ? (documentSchema.items as RJSFSchema) : {};
  const properties = (items.properties ?? {}) as Record<string, RJSFSchema>;
  return {
    ...documentSchema,
    title: "",
    items: {
      ...items,
      properties: {
        ...properties,
        default: { type: "string", description: "Used when a run gives no value. Leave empty for none." },
        choices: { ...(properties.choices ?? {}), type: "array", items: { type: "string" } },
      },
    },
  };
}
