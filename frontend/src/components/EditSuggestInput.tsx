// A text input (or textarea) with a list of suggestions under it, computed from the text
// before the caret: arrows move, Enter or Tab takes one, Escape closes the list.
import { useEffect, useLayoutEffect, useRef, useState, type InputHTMLAttributes, type KeyboardEvent } from "react";
import type { Suggestion, Suggestions } from "../EditSuggestions";

type InputProps = Omit<InputHTMLAttributes<HTMLInputElement>, "onChange" | "value" | "onSelect">;

interface Props extends InputProps {
  value: string;
  onChange: (value: string) => void;
  suggest: (before: string, after: string) => Suggestions | null;
  /** Called with what was taken from the list, after the value changed. */
  onTake?: (suggestion: Suggestion) => void;
  multiline?: boolean;
  /** When this changes (e.g. a list arrived), the suggestions of a focused field are computed again. */
  refreshKey?: unknown;
}

export function SuggestInput({
  value,
  onChange,
  suggest,
  onTake,
  multiline,
  refreshKey,
  onFocus,
  onBlur,
  ...inputProps
}: Props) {
  const ref = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const [shown, setShown] = useState<Suggestions | null>(null);
  const [active, setActive] = useState(0);
  /** Where the caret goes once a value taken from the list is rendered. */
  const pendingCaret = useRef<{ text: string; position: number } | null>(null);

  const refresh = (text: string) => {
    const caret = ref.current?.selectionStart ?? text.length;
    setShown(suggest(text.slice(0, caret), text.slice(caret)));
    setActive(0);
  };

  useEffect(() => {
    const element = ref.current;
    if (element && element === document.activeElement) refresh(element.value);
  }, [refreshKey]);

  const take = (suggestion: Suggestion) => {
    const element = ref.current;
    const text = element?.value ?? value;
    const caret = element?.selectionStart ?? text.length;
    const start = shown?.start ?? 0;
    const end = shown?.replaceRest ? text.length : caret;
    const next = text.slice(0, start) + suggestion.insert + text.slice(end);
    onChange(next);
    setShown(null);
    onTake?.(suggestion);
    pendingCaret.current = { text: next, position: start + suggestion.insert.length };
  };

  // After the value taken from the list is rendered, and before the next key press, the
  // caret goes right after what was inserted.
  useLayoutEffect(() => {
    const element = ref.current;
    const wanted = pendingCaret.current;
    if (!element || !wanted || element.value !== wanted.text) return;
    pendingCaret.current = null;
    element.setSelectionRange(wanted.position, wanted.position);
  });

  const onKeyDown = (event: KeyboardEvent) => {
    if (!shown) return;
    const count = shown.options.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      setActive((index) => (index + (event.key === "ArrowDown" ? 1 : count - 1)) % count);
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      take(shown.options[active]);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // close the list, not the dialog around it
      setShown(null);
    }
  };

  const listId = `${inputProps.id ?? "input"}__suggestions`;
  const common = {
    ref,
    value,
    autoComplete: "off",
    role: "combobox",
    "aria-expanded": shown !== null,
    "aria-controls": listId,
    "aria-autocomplete": "list" as const,
    onKeyDown,
    onKeyUp: (event: KeyboardEvent) => {
      if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) refresh(ref.current?.value ?? value);
    },
    onClick: () => refresh(value),
  };
  return (
    <div className="dm-suggest">
      {multiline ? (
        <textarea
          {...(inputProps as InputHTMLAttributes<HTMLTextAreaElement>)}
          {...common}
          onChange={(event) => {
            onChange(event.target.value);
            refresh(event.target.value);
          }}
          onFocus={(event) => refresh(event.target.value)}
          onBlur={() => setShown(null)}
        />
      ) : (
        <input
          {...inputProps}
          {...common}
          onChange={(event) => {
            onChange(event.target.value);
            refresh(event.target.value);
          }}
          onFocus={(event) => {
            refresh(event.target.value);
            onFocus?.(event);
          }}
          onBlur={(event) => {
            setShown(null);
            onBlur?.(event);
          }}
        />
      )}
      {shown && (
        <ul className="dm-suggestions" role="listbox" id={listId}>
          {shown.options.map((option, index) => (
            <li
              key={`${option.label}-${index}`}
              role="option"
              aria-selected={index === active}
              className={index === active ? "is-active" : ""}
              // mousedown, not click: the input must not lose focus (and close the list) first
              onMouseDown={(event) => {
                event.preventDefault();
                take(option);
              }}
            >
              <span className="dm-suggestion-label">{option.label}</span>
              {option.detail && <span className="dm-suggestion-detail">{option.detail}</span>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
