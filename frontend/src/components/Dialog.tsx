// A modal <dialog>: Escape and the Cancel button close it; focus stays inside, and so do
// keys: Delete or Ctrl+Z typed here never edit the canvas behind it.
import { useEffect, useRef, type ReactNode } from "react";

interface Props {
  title: string;
  onClose: () => void;
  children: ReactNode;
  /** e.g. "dm-dialog-wide" (schedules) or "dm-dialog-full" (version history). */
  className?: string;
  /** Shown right of the title, e.g. a Close button. */
  actions?: ReactNode;
}

export function Dialog({ title, onClose, children, className, actions }: Props) {
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
      {actions ? (
        <div className="dm-dialog-head">
          <h2>{title}</h2>
          {actions}
        </div>
      ) : (
        <h2>{title}</h2>
      )}
      {children}
    </dialog>
  );
}
