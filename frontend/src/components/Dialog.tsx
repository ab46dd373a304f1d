// A modal <dialog>: Escape and the Cancel button close it; focus stays inside, and so do
// keys: Delete or Ctrl+Z typed here never edit the canvas behind it. Its form's buttons:
// Cancel, and submit, which says while it is busy.
import { useEffect, useRef, type ReactNode } from "react";

interface Props {
  title: string;
  onClose: () => void;
  children: ReactNode;
  /** e.g. "dm-dialog-wide" (schedules) or "dm-dialog-full" (version history). */
  className?: string;
  /** A Close button right of the title, for a dialog without a Cancel of its own. */
  closeButton?: boolean;
}

export function Dialog({ title, onClose, children, className, closeButton = false }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      className={className ? `dm-dialog ${className}` : "dm-dialog"}
      aria-label={title}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
      onKeyDown={(event) => {
        event.stopPropagation();
        // Ctrl+S is the designer's Save, also here: never the browser's "Save page as".
        if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") event.preventDefault();
      }}
    >
      {closeButton ? (
        <div className="dm-dialog-head">
          <h2>{title}</h2>
          <button type="button" onClick={onClose}>
            Close
          </button>
        </div>
      ) : (
        <h2>{title}</h2>
      )}
      {children}
    </dialog>
  );
}

interface FormButtonsProps {
  label: string;
  busy: boolean;
  onCancel: () => void;
  /** e.g. "save-schedule" */
  id?: string;
}

export function FormButtons({ label, busy, onCancel, id }: FormButtonsProps) {
  return (
    <div className="dm-dialog-actions">
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <button type="submit" className="primary" id={id} disabled={busy}>
        {busy ? "Saving…" : label}
      </button>
    </div>
  );
}
