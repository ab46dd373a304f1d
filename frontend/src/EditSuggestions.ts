// What a text field offers as you type: `{{ params.x }}` and `{{ nodes.<key>.output. }}`
// inside a template, the same names in a bare expression (a Condition's), dataset names in
// a dataset field, operator names in an operator step. Pure functions of the text before
// the caret: no React, no fetch.

export interface Suggestion {
  /** What the list shows. */
  label: string;
  /** What replaces the text from `start` to the caret (or to the end, see `replaceRest`). */
  insert: string;
  detail?: string;
}

export interface Suggestions {
  /** Where the replaced text starts. */
  start: number;
  options: Suggestion[];
  /** Replace the whole rest of the value too (a name picked from a list). */
  replaceRest?: boolean;
}

export interface ReferenceNames {
  parameters: { name: string; type: string }[];
  nodeKeys: string[];
}

const MAX_OPTIONS = 30;
const TOKEN = /[A-Za-z0-9_.]*$/;

function references(names: ReferenceNames): Suggestion[] {
  return [
    ...names.parameters.map((p) => ({ label: `params.${p.name}`, insert: `params.${p.name}`, detail: p.type })),
    ...names.nodeKeys.map((key) => ({ label: `nodes.${key}.output.`, insert: `nodes.${key}.output.`, detail: "node" })),
  ];
}

function matching(options: Suggestion[], token: string): Suggestion[] {
  return options.filter((o) => o.insert.startsWith(token) && o.insert !== token).slice(0, MAX_OPTIONS);
}

/** Inside an open `{{ … ` before the caret: the references that complete the word typed. */
export function templateSuggestions(before: string, after: string, names: ReferenceNames): Suggestions | null {
  const open = before.lastIndexOf("{{");
  if (open < 0 || before.includes("}}", open)) return null;
  const token = TOKEN.exec(before)![0];
  const start = before.length - token.length;
  const closed = /^[^{]*\}\}/.test(after);
  const options = matching(references(names), token).map((option) => {
    // A parameter is a whole value: close the template unless it is closed already.
    let insert = option.insert;
    if (start === open + 2) insert = ` ${insert}`;
    if (insert.includes("params.") && !closed) insert = `${insert} }}`;
    return { ...option, insert };
  });
  return options.length ? { start, options } : null;
}

/** In a bare expression (`nodes.clean.output.count > params.min`): the same references. */
export function expressionSuggestions(before: string, names: ReferenceNames): Suggestions | null {
  const token = /[A-Za-z_][A-Za-z0-9_.]*$/.exec(before)?.[0] ?? "";
  if (!token) return null;
  const options = matching(references(names), token);
  return options.length ? { start: before.length - token.length, options } : null;
}

/** A name picked from a list (datasets, operators): entries that contain what is typed. */
export function nameSuggestions(typed: string, entries: Suggestion[]): Suggestions | null {
  const needle = typed.trim().toLowerCase();
  const options = entries
    .filter((entry) => entry.insert !== typed && `${entry.label} ${entry.insert}`.toLowerCase().includes(needle))
    .slice(0, MAX_OPTIONS);
  return options.length ? { start: 0, options, replaceRest: true } : null;
}
