// The designer's rjsf widgets: text fields that complete `{{ params.x }}` and
// `{{ nodes.<key>.output. }}` references (bare references in expression fields), and the
// dataset picker of fields the catalogue marks `"x-catalogue": "datasets"`.
import { ariaDescribedByIds, getTemplate, type WidgetProps } from "@rjsf/utils";
import { useEffect, useMemo, useState } from "react";
import { useEditor, type EditorState } from "../context";
import {
  expressionSuggestions,
  nameSuggestions,
  templateSuggestions,
  type ReferenceNames,
  type Suggestion,
} from "../EditSuggestions";
import type { Dataset, Page } from "../types";
import { SuggestInput } from "./EditSuggestInput";

const NO_NAMES: ReferenceNames = { parameters: [], nodeKeys: [] };
const SEARCH_DELAY_MS = 200;

function names(editor: EditorState | null): ReferenceNames {
  return editor ?? NO_NAMES;
}

/** The attributes rjsf's own BaseInputTemplate gives its input, so ids, labels and
 * errors stay wired as in every other field. */
function inputAttributes(props: WidgetProps) {
  const { id, htmlName, required, disabled, readonly, autofocus, placeholder, onBlur, onFocus } = props;
  return {
    id,
    name: htmlName || id,
    className: "form-control",
    required,
    disabled,
    readOnly: readonly,
    autoFocus: autofocus,
    placeholder,
    "aria-describedby": ariaDescribedByIds(id),
    onBlur: (event: { target: { value: string } }) => onBlur(id, event.target.value),
    onFocus: (event: { target: { value: string } }) => onFocus(id, event.target.value),
  };
}

function textOf(value: unknown): string {
  return value == null ? "" : String(value);
}

function TemplateInput(props: WidgetProps & { multiline?: boolean }) {
  const editor = useEditor();
  const { value, onChange, options, multiline } = props;
  const expression = options.expression === true;
  return (
    <SuggestInput
      {...inputAttributes(props)}
      multiline={multiline}
      value={textOf(value)}
      onChange={(text) => onChange(text === "" ? options.emptyValue : text)}
      suggest={(before, after) =>
        expression ? expressionSuggestions(before, names(editor)) : templateSuggestions(before, after, names(editor))
      }
    />
  );
}

/** Strings get reference completion; numbers and the rest keep rjsf's own input. */
export function TemplateTextWidget(props: WidgetProps) {
  if (props.schema.type !== "string") {
    const BaseInputTemplate = getTemplate("BaseInputTemplate", props.registry, props.options);
    return <BaseInputTemplate {...props} />;
  }
  return <TemplateInput {...props} />;
}

export function TemplateTextareaWidget(props: WidgetProps) {
  return <TemplateInput {...props} multiline />;
}

/** A dataset by name, picked from /api/datasets/ (searched as you type), or a
 * `{{ params.x }}` of a dataset parameter. */
export function DatasetWidget(props: WidgetProps) {
  const editor = useEditor();
  const { value, onChange, options } = props;
  const text = textOf(value);
  const [datasets, setDatasets] = useState<Dataset[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const search = text.includes("{{") ? "" : text.trim();

  useEffect(() => {
    if (!editor) return;
    let current = true;
    const timer = window.setTimeout(() => {
      const url = `${editor.urls.datasets}?search=${encodeURIComponent(search)}`;
      editor.api
        .get<Page<Dataset>>(url)
        .then(({ data }) => {
          if (!current) return;
          setDatasets(data.results);
          setProblem(null);
        })
        .catch((error: unknown) => current && setProblem(`Datasets could not be listed: ${String(error)}`));
    }, SEARCH_DELAY_MS);
    return () => {
      current = false;
      window.clearTimeout(timer);
    };
  }, [editor, search]);

  const entries = useMemo((): Suggestion[] => {
    const parameters = (editor?.parameters ?? [])
      .filter((p) => p.type === "dataset")
      .map((p) => ({ label: `{{ params.${p.name} }}`, insert: `{{ params.${p.name} }}`, detail: "parameter" }));
    const named = datasets.map((d) => ({
      label: d.name,
      insert: d.name,
      detail: d.latest_version ? `v${d.latest_version}` : "no version yet",
    }));
    return [...parameters, ...named];
  }, [datasets, editor]);

  return (
    <>
      <SuggestInput
        {...inputAttributes(props)}
        placeholder={props.placeholder || "Pick a dataset, or type a name"}
        className="form-control dm-dataset-picker"
        value={text}
        onChange={(next) => onChange(next === "" ? options.emptyValue : next)}
        suggest={(before, after) =>
          before.includes("{{")
            ? templateSuggestions(before, after, names(editor))
            : nameSuggestions(before + after, entries)
        }
        refreshKey={entries}
      />
      {problem && <small className="dm-error-text">{problem}</small>}
    </>
  );
}
