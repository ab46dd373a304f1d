// Save: a message for the new version, then PUT the document.
import { useState } from "react";
import { Dialog, FormButtons } from "./Dialog";

export function SaveDialog({
  onSave,
  onClose,
  busy,
}: {
  onSave: (message: string) => void;
  onClose: () => void;
  busy: boolean;
}) {
  const [message, setMessage] = useState("");
  return (
    <Dialog title="Save a new version" onClose={onClose}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          onSave(message.trim());
        }}
      >
        <label className="dm-field">
          <span>What changed?</span>
          <input
            id="save-message"
            autoFocus
            value={message}
            maxLength={500}
            placeholder="e.g. Drop short documents"
            onChange={(e) => setMessage(e.target.value)}
          />
        </label>
        <FormButtons label="Save" busy={busy} onCancel={onClose} />
      </form>
    </Dialog>
  );
}
