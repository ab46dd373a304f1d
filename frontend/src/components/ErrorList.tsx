// The server's errors that no form field shows, each with the field it names (readable)
// and why: in the side panels, the dialogs, and on a node's card.
import { readableField } from "../forms";
import type { FieldError } from "../types";

interface Props {
  errors: FieldError[];
  /** "dm-node-errors" on a node's card. */
  className?: string;
  /** Each error's node too (a run's errors are about the whole pipeline). */
  withNode?: boolean;
}

export function ErrorList({ errors, className = "dm-error-list", withNode = false }: Props) {
  if (errors.length === 0) return null;
  return (
    <ul className={className} role="alert">
      {errors.map((error, index) => (
        <li key={index}>
          {withNode && <>{error.node && <code>{error.node}</code>} </>}
          {error.field && <strong>{readableField(error.field)}</strong>} {error.message}
        </li>
      ))}
    </ul>
  );
}
